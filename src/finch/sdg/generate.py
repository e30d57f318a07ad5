"""Run a pipeline over taxonomy leaves, one leaf and one block at a time, and never lose finished work.

Every block keeps a JSONL journal in `<output>/.work/<leaf>/`: one fsync'd record per teacher call, written the
moment the call returns. A rerun reads the journals and sends only the calls that have no record yet, so a kill
loses at most the calls in flight and repeats none that finished. A block's `.done` marker says its journal is
complete; a leaf's `leaf.done` says its rows are in `leaves/`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from finch.errors import UsageError
from finch.evaluate.key_facts import extract_key_facts, facts_held
from finch.evaluate.metrics import json_object
from finch.fileio import JsonlAppender, atomic_write_json, read_jsonl
from finch.inference import GenerationParams
from finch.sdg import judge, parse
from finch.sdg.chunking import CountTokens, chunk_pages, chunk_text
from finch.sdg.dedup import NearDuplicates
from finch.sdg.pipeline import MAX_PER_CALL, Block, Pipeline, load_prompt
from finch.taxonomy import Knowledge, LeafResult, Skill, SourceDocument, hold_out

WORK = ".work"
FOCUS_TOKENS = 120  # a knowledge passage asked about in one call: a paragraph, a few sentences or list lines
RAW_KEPT = 2000  # characters of a rejected answer kept in the journal
AGAIN = ".again"  # a retry's call id: the call's, with this after it
# a chunk's multiple-choice question, asked until the teacher confirms its key: on the sample manual two of eight
# chunks had none after two tries
MCQ_TRIES = 4


@dataclass
class GenerateOptions:
    output: Path
    scale: int = 5  # samples to generate per seed example (knowledge: at least; every passage is asked about)
    seed: int = 42
    workers: int = 8  # concurrent teacher calls (HTTP teachers; in-process ones take one at a time)
    chunk_tokens: int = 400
    chunk_overlap: int = 48
    replay: Path | None = None
    replay_ratio: float = 0.0
    limit_per_leaf: int | None = None  # cap on samples generated per leaf (the quickstart keeps runs short)


@dataclass
class LeafPlan:
    """What a pipeline needs to know about one leaf."""

    name: str
    slug: str
    kind: str  # knowledge | skill
    flavour: str  # knowledge | skills_freeform | skills_grounded
    task: str
    examples: list[dict[str, str]]  # seed examples the teacher is shown: question, answer (, context)
    sources: list[dict[str, Any]]  # the items the first block starts from: chunks, or one empty item
    target: int  # samples to generate: scale × seed examples
    fingerprint: str
    limit: int | None = None  # --limit-per-leaf: also caps the benchmark questions
    held_out: list[dict[str, str]] = field(default_factory=list)  # the test set: never in train or a generation prompt

    @property
    def phase(self) -> str:
        return "knowledge" if self.kind == "knowledge" else "skills"


class Progress(Protocol):
    def start(self, leaf: str, stage: str, total: int, done: int) -> None: ...

    def advance(self, kept: int, rejected: int) -> None: ...

    def grow(self, calls: int) -> None: ...  # calls asked again: the stage's total grows

    def finish(self) -> None: ...


class NoProgress:
    def start(self, leaf: str, stage: str, total: int, done: int) -> None:
        pass

    def advance(self, kept: int, rejected: int) -> None:
        pass

    def grow(self, calls: int) -> None:
        pass

    def finish(self) -> None:
        pass


def leaf_slug(name: str) -> str:
    return name.replace("->", ".").replace("/", "_").replace(" ", "_")


def plan_leaf(result: LeafResult, options: GenerateOptions, count_tokens: CountTokens) -> LeafPlan:
    leaf = result.leaf
    text = result.path.read_text(encoding="utf-8", errors="replace")
    digest = hashlib.sha256(text.encode())
    if isinstance(leaf, Knowledge):
        examples = [
            {"question": qa.question, "answer": qa.answer, "context": e.context}
            for e in leaf.seed_examples
            for qa in e.questions_and_answers
        ]
        texts = [d.text for d in result.documents] or [e.context for e in leaf.seed_examples]
        for t in texts:
            digest.update(t.encode())
        chunks = _document_chunks(result.documents, texts, count_tokens, options)
        # every passage of a chunk is asked about on its own, with the whole chunk as its context: asked about a
        # whole chunk at once, the teacher wrote about its first and most salient facts and skipped the rest
        passages = [chunk_text(c, count_tokens, FOCUS_TOKENS, 0) for c, _ in chunks]
        sources = [
            {"id": f"chunk{i}.{k}", "chunk": chunk, "focus": focus, **origin}
            for i, (chunk, origin) in enumerate(chunks)
            for k, focus in enumerate(passages[i])
        ]
        kind, flavour, task = "knowledge", "knowledge", leaf.document_outline
    elif isinstance(leaf, Skill):
        examples = [e.model_dump(exclude_none=True) for e in leaf.seed_examples]
        sources = [{"id": "seed"}]
        kind, task = "skill", leaf.task_description
        flavour = "skills_grounded" if leaf.grounded else "skills_freeform"
    else:
        raise UsageError(f"{result.path}: not a valid leaf; run `finch taxonomy check`.")
    # a small teacher copies the examples its prompt shows: held out, the test set cannot leak into train that way
    shown, held_out = hold_out(examples)
    digest.update(json.dumps(held_out).encode())  # journals from before the split showed these: start such a leaf over
    return LeafPlan(
        name=result.name,
        slug=leaf_slug(result.name),
        kind=kind,
        flavour=flavour,
        task=task.strip(),
        examples=shown,
        sources=sources,
        target=min(options.scale * len(examples), options.limit_per_leaf or math.inf),
        fingerprint=digest.hexdigest()[:16],
        limit=options.limit_per_leaf,
        held_out=held_out,
    )


def _document_chunks(
    documents: list[SourceDocument], texts: list[str], count_tokens: CountTokens, options: GenerateOptions
) -> list[tuple[str, dict[str, Any]]]:
    """(chunk, origin) of a knowledge leaf's texts; a PDF's chunks stay within a page, and their origin names the
    document and the page, which the rows generated from them keep in their metadata."""
    size, overlap = options.chunk_tokens, options.chunk_overlap
    if not documents:
        return [(chunk, {}) for text in texts for chunk in chunk_text(text, count_tokens, size, overlap)]
    chunks: list[tuple[str, dict[str, Any]]] = []
    for document in documents:
        if document.pages:
            chunks += [
                (chunk, {"document": document.path.name, "page": page})
                for page, chunk in chunk_pages(document.pages, count_tokens, size, overlap)
            ]
        else:
            chunks += [(chunk, {}) for chunk in chunk_text(document.text, count_tokens, size, overlap)]
    return chunks


@dataclass
class Call:
    id: str
    messages: list[dict[str, str]]
    params: GenerationParams
    item: dict[str, Any] = field(default_factory=dict)  # the input item (expand: its source)
    count: int = 1  # expand: items asked for
    anchor: str | None = None  # judge: good | bad for an anchor with a known verdict (finch.sdg.judge)
    prefill: str = ""  # the start of the answer, for a teacher that can be given it (conversation())


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


def _examples(plan: LeafPlan, block: Block, rng: random.Random, chunk: str = "") -> list[dict[str, str]]:
    """Seed examples for a prompt. Given a document chunk, those whose context shares the most words with it: a
    teacher copies what its prompt shows, and a copy of an example about the same passage is still a true fact about
    it, where one about another passage is a row the chunk never grounded."""
    count = min(block.examples, len(plan.examples))
    if not chunk or not all(e.get("context") for e in plan.examples):
        return rng.sample(plan.examples, count)
    words = set(_WORD.findall(chunk.lower()))
    overlap = [len(words & set(_WORD.findall(e["context"].lower()))) for e in plan.examples]
    ranked = sorted(range(len(plan.examples)), key=lambda i: (-overlap[i], rng.random()))
    return [plan.examples[i] for i in ranked[:count]]


_WORD = re.compile(r"\w{4,}")


def _count_for_facts(block: Block, passage: str) -> int:
    """Questions to ask about a passage: one per `1 / per_fact` key facts it states. With a fixed count the
    teacher asked about a passage's first facts and never reached the rest (a table of nine error codes got three
    questions, and no row ever said what the last code means)."""
    facts = len(extract_key_facts(passage))
    return max(block.per_call, min(MAX_PER_CALL, math.ceil(block.per_fact * facts)))


_HEADING_MARK = re.compile(r"(?m)^#+[ \t]*(?:\d+(?:\.\d+)*\.?[ \t]+)?")


def passage_facts(passage: str) -> list[str]:
    """The key facts a passage states (finch.evaluate.key_facts); a markdown heading's marks and number ("## 3.") are
    left out, so its first word starts a sentence and its number is no fact."""
    return extract_key_facts(_HEADING_MARK.sub("", passage))


def fact_coverage(plan: LeafPlan, items: list[dict]) -> list[tuple[dict, list[str], list[str]]]:
    """(passage, its key facts, those that no item asked about its chunk states in its answer) for every document
    passage. The student recalls the facts its rows state and never the others: on the sample manual a tuned run held
    10 of the 16 probe facts some kept pair stated and none of the 6 that no pair did. A pair asked about one passage
    often states a fact of another passage of its chunk, so a fact counts as stated by any pair of the chunk."""
    answers: dict[str, list[str]] = {}
    for item in items:
        answers.setdefault(item.get("chunk", ""), []).append(item["answer"])
    found = []
    for source in plan.sources:
        if not source.get("focus"):
            continue
        facts = passage_facts(source["focus"])
        said = answers.get(source["chunk"], [])
        found.append((source, facts, [f for f in facts if not any(facts_held(a, [f])[0] for a in said)]))
    return found


def cover_check(pair: dict[str, str], item: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(why a pair written for a passage's missing facts is dropped, or None; the missing facts it states). Its
    answer must state one of them that its question does not give away, and no number or name that the chunk does
    not state: such a pair is not judged by the teacher, and these rules are its check."""
    question, answer = pair["question"], pair["answer"]
    covers = [f for f in item["missing"] if facts_held(answer, [f])[0] and not facts_held(question, [f])[0]]
    if not covers:
        return "no_missing_fact", []
    if not all(facts_held(item["chunk"], extract_key_facts(answer, question))):
        return "ungrounded", []
    return None, covers


def _judge_examples(plan: LeafPlan, block: Block, seed: int) -> list[dict[str, str]]:
    """One set of examples for all of a judge block's calls: its anchors are rated against the same prompt, and a
    local teacher reuses the shared prompt prefix."""
    return _examples(plan, block, random.Random(_seed(seed, plan.slug, block.name, "examples")))


def block_calls(
    pipeline: Pipeline, block: Block, plan: LeafPlan, items: list[dict], seed: int, index: int
) -> list[Call]:
    """The teacher calls a block makes on its input items; ids are stable across reruns."""
    prompt = load_prompt(pipeline, block.prompt)
    calls = []

    def params(call_id: str, count: int = 1) -> GenerationParams:
        temperature, max_tokens = block.sampling(count)
        return GenerationParams(
            temperature=temperature,
            max_tokens=max_tokens,
            seed=_seed(seed, plan.slug, block.name, call_id),
            stop=block.stop,
        )

    if block.type == "expand":
        if not items:
            return []
        n_calls = math.ceil(plan.target / block.per_call)
        every_item = block.every_item and plan.limit is None  # however small the target
        if every_item:
            n_calls = len(items) * math.ceil(n_calls / len(items))
        for j in range(n_calls):
            call_id = f"{index}.{j}"
            source = items[j % len(items)]
            count = block.per_call if every_item else min(block.per_call, plan.target - j * block.per_call)
            if every_item and block.per_fact and source.get("focus"):
                count = _count_for_facts(block, source["focus"])
            rng = random.Random(_seed(seed, plan.slug, block.name, call_id, "examples"))
            values = {"task": plan.task, "outline": plan.task, "count": count, "item": source}
            values["examples"] = _examples(plan, block, rng, source.get("focus") or source.get("chunk", ""))
            calls.append(
                Call(
                    call_id,
                    prompt.messages(**values),
                    params(call_id, count),
                    item=source,
                    count=count,
                    prefill=prompt.answer_start(**values),
                )
            )
        return calls
    if block.type == "cover":  # a capped run (--limit-per-leaf) asks nothing beyond its cap
        if plan.limit is not None:
            return []
        for source, _, missing in fact_coverage(plan, items):
            for k in range(0, len(missing), MAX_PER_CALL):
                call_id = f"{index}.{source['id']}.{k // MAX_PER_CALL}"
                item = {**source, "missing": missing[k : k + MAX_PER_CALL]}
                values = {"task": plan.task, "outline": plan.task, "count": len(item["missing"]), "item": item}
                count, prefill = len(item["missing"]), prompt.answer_start(**values)
                messages = prompt.messages(**values)
                calls.append(Call(call_id, messages, params(call_id, count), item, count, prefill=prefill))
        return calls
    if block.type == "mcq":  # one question per chunk, not per passage
        first: dict[str, dict] = {}
        for item in items:
            first.setdefault(item["chunk"], item)
        items = list(first.values())[: plan.limit]
    for item in items:
        if block.type == "judge":
            examples = _judge_examples(plan, block, seed)
        else:
            examples = _examples(plan, block, random.Random(_seed(seed, plan.slug, block.name, item["id"], "examples")))
        values = {"task": plan.task, "outline": plan.task, "item": item, "examples": examples}
        prefill = prompt.answer_start(**values)
        calls.append(Call(item["id"], prompt.messages(**values), params(item["id"]), item=item, prefill=prefill))
    return calls


def anchor_calls(pipeline: Pipeline, block: Block, plan: LeafPlan, seed: int) -> list[Call]:
    """A judge block's anchors: seed examples as they are and spoiled, rated first to calibrate its scale. The
    held-out examples may be anchors: an anchor is only rated, by a local teacher (one that gives probabilities),
    and never becomes a row; a leaf of five examples would otherwise have too few unseen ones to calibrate on."""
    prompt = load_prompt(pipeline, block.prompt)
    shown = _judge_examples(plan, block, seed)
    calls = []
    pool = plan.examples + plan.held_out
    for k, (verdict, item) in enumerate(judge.anchors(pool, shown, block.anchors or "answer")):
        messages = prompt.messages(examples=shown, task=plan.task, outline=plan.task, item=item)
        params = GenerationParams(temperature=0.0, max_tokens=1)
        calls.append(Call(f"anchor.{k}", messages, params, item, anchor=verdict))
    return calls


def apply_judgement(block: Block, call: Call, probs: dict[str, float], scale: tuple[float, float] | None) -> dict:
    """A journal record from the judge's probabilities over the rating digits; `scale` is the anchors' (good, bad)
    mean ratings, or None for a block without anchors (its expected rating is its score)."""
    rating = judge.expected_rating(probs)
    record: dict[str, Any] = {
        "call": call.id,
        "probs": {k: round(v, 4) for k, v in probs.items()},
        "rating": None if rating is None else round(rating, 4),
    }
    if call.anchor:
        return {**record, "anchor": call.anchor, "generated": 0, "items": [], "rejected": {}}
    if rating is None or block.anchors is None:
        score = rating
    else:
        score = None if scale is None else judge.calibrate(rating, *scale)
    rejected: dict[str, int] = {}
    kept = []
    if rating is None:
        rejected["unparseable_rating"] = 1
    elif score is None:
        # it did not rate spoiled seed examples clearly below the real ones: its rating says nothing, so it
        # abstains, and the item goes on unrated (score None in the row, `abstained` in the report)
        kept.append({**call.item, "scores": {**call.item.get("scores", {}), block.name: None}})
        record["abstained"] = 1
    elif score < block.threshold:
        rejected["low_rating"] = 1
    else:
        kept.append({**call.item, "scores": {**call.item.get("scores", {}), block.name: round(score, 3)}})
    return {**record, "generated": 1, "items": kept, "rejected": rejected}


def apply_block(block: Block, call: Call, text: str, finish_reason: str) -> dict[str, Any]:
    """Turn one teacher answer into a journal record: the items kept, the rejections by reason."""
    rejected: dict[str, int] = {}
    kept: list[dict] = []
    record: dict[str, Any] = {"call": call.id, "generated": call.count}
    if block.type == "expand":
        base = {k: v for k, v in call.item.items() if k not in ("id", "scores")}
        if len(block.fields) == 1:
            found = [{block.fields[0]: value} for value in parse.numbered_items(text)]
        else:
            found, _ = parse.labelled_records(text, block.fields)
        for k, values in enumerate(found[: call.count]):
            kept.append({**base, **values, "id": f"{call.id}.{k}", "scores": {}})
        if len(kept) < call.count:
            rejected["parse_error"] = call.count - len(kept)
    elif block.type == "cover":
        base = {k: v for k, v in call.item.items() if k not in ("id", "scores", "missing")}
        found, _ = parse.labelled_records(text, block.fields)
        for k, values in enumerate(found[: call.count]):
            reason, covers = cover_check(values, call.item)
            if reason:
                rejected[reason] = rejected.get(reason, 0) + 1
            else:
                kept.append({**base, **values, "id": f"{call.id}.{k}", "scores": {}, "covers": covers})
        if len(found) < call.count:
            rejected["parse_error"] = call.count - len(found)
    elif block.type == "generate":
        value = text.strip()
        if finish_reason == "length":
            rejected["truncated"] = 1
        elif not value:
            rejected["empty"] = 1
        else:
            kept.append({**call.item, block.field: value})
    elif block.type == "judge":
        score = parse.rating(text)
        if score is None:
            rejected["unparseable_rating"] = 1
        elif score < block.threshold:
            rejected["low_rating"] = 1
        else:
            kept.append({**call.item, "scores": {**call.item.get("scores", {}), block.name: score}})
    elif block.type == "mcq":
        question = parse.multiple_choice(text)
        if question is None:
            rejected["parse_error"] = 1
        else:
            record["mcq"] = {**shuffled(question, _seed(call.id)), "context": call.item.get("chunk", "")}
        record["kept"] = 0 if question is None else 1
    record["items"] = kept
    record["rejected"] = rejected
    if rejected:
        record["raw"] = text[:RAW_KEPT]  # why something was dropped stays visible, not just a count
    return record


def run_calls(
    backend,
    calls: list[Call],
    block: Block,
    journal: Path,
    workers: int,
    progress: Progress,
    scale: tuple[float, float] | None = None,
) -> None:
    """Send the calls with no record in the journal yet, `workers` at a time, appending each record as it lands. A
    generating call whose answer reads as nothing is asked again right away (retry_of), while the others run."""
    done = {r["call"] for r in read_jsonl(journal)}
    todo = [c for c in calls if c.id not in done]
    with JsonlAppender(journal) as out:
        if not todo:
            return

        def landed(call: Call, record: dict[str, Any]) -> Call | None:
            out.append(record)
            progress.advance(len(record["items"]), sum(record["rejected"].values()))
            again = retry_of(block, call, record)
            if again is None or again.id in done:
                return None
            progress.grow(1)
            return again

        if backend.abilities.batch_decoding and not reads_ratings(backend, block):
            _stream(backend, block, todo, landed)  # a local teacher decodes its calls together
            return
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            pending = {}
            queue = deque(todo)

            def submit() -> None:
                if queue:
                    call = queue.popleft()
                    pending[pool.submit(_one, backend, block, call, scale)] = call

            for _ in range(workers):
                submit()
            failure: Exception | None = None
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    call = pending.pop(future)
                    try:
                        record = future.result()
                    except Exception as e:  # a teacher failure: send nothing more, keep what the calls in flight bring
                        failure = failure or e
                        continue
                    again = landed(call, record)
                    if failure is None:
                        if again is not None:
                            queue.append(again)
                        submit()
            if failure is not None:
                raise failure  # every answer that came back is on disk: a rerun asks only for the rest
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _stream(backend, block: Block, calls: list[Call], landed) -> None:
    """Every call through backend.chat_stream; a record's seconds are the wall time since the previous one landed,
    so they add up to the stage's time however many calls ran together."""
    requests = deque()

    def ask(call: Call) -> None:
        messages, prefill = conversation(backend, call)
        requests.append(((call, prefill), messages, call.params))

    for call in calls:
        ask(call)
    last = time.monotonic()
    for (call, prefill), completion in backend.chat_stream(requests):
        record = apply_block(block, call, prefill + completion.text, completion.finish_reason)
        now = time.monotonic()
        record["seconds"], last = round(now - last, 3), now
        again = landed(call, record)
        if again is not None:
            ask(again)


def conversation(backend, call: Call) -> tuple[list[dict[str, str]], str]:
    """The messages to send, and the start of the answer they already hold. A teacher that renders its own prompt
    (a local model) continues a trailing assistant message, so the call's prefill goes there and its answer is read
    as prefill + completion. An HTTP teacher gets none: OpenAI-compatible chat APIs do not portably continue an
    assistant turn (OpenAI's answers it with a new one), and a served chat model follows the format without it."""
    if call.prefill and backend.abilities.renders_prompts:
        return [*call.messages, {"role": "assistant", "content": call.prefill}], call.prefill
    return call.messages, ""


def shuffled(question: dict, seed: int) -> dict:
    """The question with its choices in a seeded order: a teacher writes the right choice first far more often than
    not, which a benchmark would reward in a model that always answers A, and its own check would share."""
    order = list(range(len(question["choices"])))
    random.Random(seed).shuffle(order)
    return {**question, "choices": [question["choices"][i] for i in order], "answer": order.index(question["answer"])}


def retry_of(block: Block, call: Call, record: dict[str, Any], unconfirmed: bool = False) -> Call | None:
    """A generating call whose answer read as nothing (or, `unconfirmed`, a multiple-choice question whose key the
    teacher did not confirm), asked again with a seed of its own: a small teacher's sample is sometimes off format or
    wrong, and under --limit-per-leaf one call can be all a leaf has. A retry is a call of its own in the journal
    (`<id>.again`, then `<id>.again.again`), so a rerun neither repeats nor loses one, and the report counts them
    all. A generating call is asked twice at most; a chunk's question up to MCQ_TRIES times, since a chunk without
    one is missing from the knowledge benchmark."""
    produced = record["items"] or record.get("mcq")
    tries = MCQ_TRIES if block.type == "mcq" else 2
    if block.type not in ("expand", "mcq") or call.id.count(AGAIN) + 1 >= tries or (produced and not unconfirmed):
        return None
    return replace(
        call, id=f"{call.id}{AGAIN}", params=call.params.model_copy(update={"seed": _seed(call.params.seed, AGAIN)})
    )


def retry_calls(
    block: Block, calls: list[Call], records: list[dict[str, Any]], unconfirmed: frozenset[str] = frozenset()
) -> list[Call]:
    """retry_of for every call with a record: after a resume, the retries a killed run had not asked yet; with
    `unconfirmed` (call ids), also a second question for each chunk whose first one the teacher did not confirm."""
    by_call = {r["call"]: r for r in records}
    retries = (retry_of(block, call, by_call[call.id], call.id in unconfirmed) for call in calls if call.id in by_call)
    return [again for again in retries if again is not None]


def reads_ratings(backend, block: Block) -> bool:
    """Judge by the teacher's probabilities where it gives them for the next token (a local model)."""
    return block.type == "judge" and backend.abilities.choice_probs


def _one(backend, block: Block, call: Call, scale: tuple[float, float] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    if reads_ratings(backend, block):
        probs = backend.next_token_probs(call.messages, judge.ANSWER_PREFIX, list(judge.RATINGS))
        record = apply_judgement(block, call, probs, scale)
    else:
        messages, prefill = conversation(backend, call)
        [[completion]] = backend.chat([messages], call.params)
        record = apply_block(block, call, prefill + completion.text, completion.finish_reason)
    record["seconds"] = round(time.monotonic() - started, 3)
    return record


LETTERS = ("A", "B", "C", "D")


def mcq_verdicts(backend, pipeline: Pipeline, records: list[dict], journal: Path) -> dict[str, bool]:
    """Whether the teacher picks each multiple-choice question's stated answer again when it answers it from the
    excerpt (a small teacher often marks the wrong letter, and a benchmark with wrong keys measures nothing), by call.
    A local teacher picks by its probabilities over the four letters, an HTTP one in text. Each verdict is journalled,
    so a rerun asks again only what it had not."""
    prompt = load_prompt(pipeline, "mcq_confirm")
    verdicts = {r["call"]: r["confirmed"] for r in read_jsonl(journal)}
    with JsonlAppender(journal) as out:
        for record in records:
            if "mcq" not in record or record["call"] in verdicts:
                continue
            messages = prompt.messages(item=record["mcq"])
            if backend.abilities.choice_probs:
                probs = backend.next_token_probs(messages, "Answer: ", list(LETTERS))
                picked = max(probs, key=probs.get) if sum(probs.values()) > 0 else None
            else:
                [[answer]] = backend.chat([messages], GenerationParams(temperature=0, max_tokens=8))
                found = re.search(r"\b([ABCD])\b", answer.text)
                picked = found.group(1) if found else None
            verdicts[record["call"]] = picked == LETTERS[record["mcq"]["answer"]]
            out.append({"call": record["call"], "picked": picked, "confirmed": verdicts[record["call"]]})
    return verdicts


def stage_stats(name: str, records: list[dict], seconds: float | None) -> dict[str, Any]:
    rejected: dict[str, int] = {}
    for record in records:
        for reason, n in record["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + n
    stats = {
        "stage": name,
        "generated": sum(r["generated"] for r in records),
        "kept": sum(r.get("kept", len(r["items"])) for r in records),
        "rejected": rejected,
        "seconds": round(seconds if seconds is not None else sum(r.get("seconds", 0) for r in records), 2),
    }
    retries = sum(r["call"].endswith(AGAIN) for r in records)
    if retries:
        stats["retries"] = retries  # calls asked again (retry_calls), counted in generated like any other
    abstained = sum(r.get("abstained", 0) for r in records)
    if abstained:
        stats["abstained"] = abstained  # kept unrated: the judge could not tell its anchors apart
    return stats


def run_leaf(
    backend, pipeline: Pipeline, plan: LeafPlan, options: GenerateOptions, progress: Progress
) -> dict[str, Any]:
    """Run (or resume) every block of the pipeline on one leaf; returns the leaf's report."""
    work = options.output / WORK / plan.slug
    fingerprint = work / "fingerprint"
    if work.exists() and (not fingerprint.exists() or fingerprint.read_text() != plan.fingerprint):
        shutil.rmtree(work)  # the leaf changed since its journals were written: start it over
    work.mkdir(parents=True, exist_ok=True)
    fingerprint.write_text(plan.fingerprint)
    workers = options.workers if backend.abilities.concurrent_requests else 1
    items = plan.sources
    stages, mcq = [], []
    for index, block in enumerate(pipeline.blocks(plan.flavour)):
        journal = work / f"{index:02d}-{block.name}.jsonl"
        confirmations = work / f"{index:02d}-{block.name}-confirm.jsonl"  # mcq: the teacher's verdicts on the keys
        marker = work / f"{index:02d}-{block.name}.done"
        calls = block_calls(pipeline, block, plan, items, options.seed, index)
        rated = block.anchors is not None and reads_ratings(backend, block)
        anchors = anchor_calls(pipeline, block, plan, options.seed) if rated else []
        seconds = None
        if not marker.exists():
            done_before = len(read_jsonl(journal))
            progress.start(plan.name, block.name, len(anchors) + len(calls), done_before)
            started = time.monotonic()
            try:
                run_calls(backend, anchors, block, journal, workers, progress)
                scale = judge.anchor_scale(read_jsonl(journal)) if anchors else None
                run_calls(backend, calls, block, journal, workers, progress, scale)
                records = read_jsonl(journal)
                retries = retry_calls(block, calls, records)
                progress.grow(len({c.id for c in retries} - {r["call"] for r in records}))
                run_calls(backend, retries, block, journal, workers, progress, scale)
                latest = calls + retries
                while block.type == "mcq" and latest:  # every chunk should have a question whose key is confirmed
                    records = read_jsonl(journal)  # each round asks the retries of the last (ids grow: it ends)
                    verdicts = mcq_verdicts(backend, pipeline, records, confirmations)
                    doubted = frozenset(r["call"] for r in records if "mcq" in r and not verdicts[r["call"]])
                    latest = list({c.id: c for c in retry_calls(block, latest, records, doubted)}.values())
                    progress.grow(len({c.id for c in latest} - {r["call"] for r in records}))
                    run_calls(backend, latest, block, journal, workers, progress)
            finally:
                progress.finish()
            seconds = time.monotonic() - started + sum(r.get("seconds", 0) for r in read_jsonl(journal)[:done_before])
            atomic_write_json(marker, {"seconds": round(seconds, 2)})
        else:
            seconds = json.loads(marker.read_text())["seconds"]
        order = {c.id: i for i, c in enumerate(anchors + calls)}
        # in the order of the calls whatever order they landed in, each retry after the try before it (.again.again
        # after .again): a resumed run's data is then the same as an uninterrupted run's
        records = sorted(
            read_jsonl(journal),
            key=lambda r: (order.get(r["call"].split(AGAIN)[0], len(order)), r["call"].count(AGAIN)),
        )
        stages.append(stage_stats(block.name, records, seconds))
        if block.type == "mcq":  # kept: the questions whose key the teacher confirmed; unconfirmed: the others
            verdicts = mcq_verdicts(backend, pipeline, records, confirmations)
            asked = [r["mcq"] for r in records if "mcq" in r]
            confirmed = [{"leaf": plan.name, **r["mcq"]} for r in records if "mcq" in r and verdicts[r["call"]]]
            if len(asked) > len(confirmed):
                stages[-1]["kept"] -= len(asked) - len(confirmed)
                stages[-1]["rejected"]["unconfirmed"] = len(asked) - len(confirmed)
            mcq += confirmed
        if block.type == "cover":  # the items go on, and the pairs that state what they left out
            stages[-1]["facts"] = _facts_stated(plan, items)
            items = items + [item for r in records for item in r["items"]]
            stages[-1]["facts"] += _facts_stated(plan, items)[1:]
        elif block.type != "mcq":  # benchmark questions are a side output: every chunk goes on
            items = [item for r in records for item in r["items"]]
    kept, dedup = deduplicate(conform(items, plan), plan)
    stages.append(dedup)
    return {"items": kept, "mcq": mcq, "stages": stages}


def _facts_stated(plan: LeafPlan, items: list[dict]) -> list[int]:
    """[key facts of the document's passages, how many of them some item's answer states]"""
    coverage = fact_coverage(plan, items)
    total = sum(len(facts) for _, facts, _ in coverage)
    return [total, total - sum(len(missing) for _, _, missing in coverage)]


def conform(items: list[dict], plan: LeafPlan) -> list[dict]:
    """A leaf whose seed answers are all JSON objects with the same keys teaches that format: a generated answer is
    kept only as such an object, written the way the seeds write it (one line, no code fence). Items that are not
    are marked `format` and dropped by deduplicate. Other leaves pass unchanged."""
    objects = [json_object(e["answer"]) for e in plan.examples]
    shapes = {None if value is None else frozenset(value) for value in objects}
    if len(shapes) != 1 or None in shapes:
        return items
    [keys] = shapes
    conformed = []
    for item in items:
        value = json_object(item["answer"])
        if value is not None and set(value) == keys:
            conformed.append({**item, "answer": json.dumps(value, ensure_ascii=False)})
        else:
            conformed.append({**item, "format": False})
    return conformed


def user_text(item: dict[str, Any], kind: str) -> str:
    if kind == "skill" and item.get("context"):
        return f"{item['context'].strip()}\n\n{item['question'].strip()}"
    return item["question"].strip()


def deduplicate(items: list[dict], plan: LeafPlan) -> tuple[list[dict], dict[str, Any]]:
    """Drop answers not in the leaf's format (conform), exact and near duplicates, and anything too close to a
    held-out seed example (the test set). A row that repeats a shown seed example stays (it is training material,
    and dedup keeps one per seed at most) but is counted as `seed_copies`, so a copying teacher's numbers say so."""
    test, shown, seen = NearDuplicates(), NearDuplicates(), NearDuplicates()
    for example in plan.held_out:
        test.add(user_text(example, plan.kind))
    for example in plan.examples:
        shown.add(user_text(example, plan.kind))
    kept, rejected, seed_copies = [], {}, 0
    for item in items:
        text = user_text(item, plan.kind)
        if item.get("format") is False:
            reason = "format"
        elif test.check(text):
            reason = "matches_test"
        else:
            reason = {"exact": "duplicate", "near": "near_duplicate"}.get(seen.check(text) or "")
        if reason:
            rejected[reason] = rejected.get(reason, 0) + 1
        else:
            kept.append(item)
            seen.add(text)
            seed_copies += bool(shown.check(text))
    stats = {"stage": "dedup", "generated": len(items), "kept": len(kept), "rejected": rejected, "seconds": 0.0}
    if seed_copies:
        stats["seed_copies"] = seed_copies  # kept: near-copies of a seed example the teacher was shown
    return kept, stats
