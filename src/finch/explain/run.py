"""`finch explain`: one prompt (or a knowledge leaf's held-out questions) through a model, and where it looked.

The explained answer is the model's own greedy answer — for a GGUF, the quantised model's through llama.cpp. With a
base model to compare, the base is traced on the same prompt and the *same answer* (teacher-forced), so the two sets
of maps share their rows and columns and their difference says what fine-tuning changed in where the model looks;
the base's own greedy answer is reported beside it.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from finch.explain.grounding import Grounding, grounding, passage_columns, token_spans
from finch.explain.models import ExplainedModel
from finch.explain.trace import Trace, trace_answer


@dataclass
class Explanation:
    messages: list[dict[str, str]]
    model: str
    prompt_tokens: list[str]
    answer_tokens: list[str]
    answer: str
    traces: dict[str, Trace]  # "model", and "base" with a comparison
    own_answers: dict[str, str]  # each model's own greedy answer
    gguf_agreement: dict | None = None  # the dequantised model's greedy answer vs the GGUF's
    grounding: dict[str, Grounding] = field(default_factory=dict)
    compare: str | None = None
    sink: bool = False  # the prompt starts with <bos>, where heads park attention
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def gguf_agreement(model: ExplainedModel, prompt_ids: list[int], gguf_ids: list[int], own_ids: list[int]) -> dict:
    """Whether the dequantised model's greedy answer is the GGUF's; where it is not, how close the call was: the
    log-probability gap, under the dequantised weights, between its own token and the GGUF's at the first
    difference (llama.cpp quantises activations for its matmuls, so near-ties can fall the other way)."""
    if gguf_ids == own_ids:
        return {"identical": True, "tokens": len(gguf_ids)}
    first = next((i for i, (a, b) in enumerate(zip(gguf_ids, own_ids)) if a != b), min(len(gguf_ids), len(own_ids)))
    result = {"identical": False, "tokens": len(gguf_ids), "first_difference": first, "gap_nats": None}
    if first < min(len(gguf_ids), len(own_ids)):
        logprobs = model.next_logprobs(prompt_ids + gguf_ids[:first])
        result["gap_nats"] = round(float(logprobs[own_ids[first]] - logprobs[gguf_ids[first]]), 4)
    return result


def explain_prompt(
    model: ExplainedModel,
    messages: list[dict[str, str]],
    max_tokens: int = 64,
    base: ExplainedModel | None = None,
    passage: str | None = None,
    reference: str | None = None,
    question: str | None = None,
) -> Explanation:
    """Answer greedily, trace the answer under the model (and the base), and score grounding when a passage and a
    reference answer are given (`question`: the question alone, whose own facts are not the answer's)."""
    started = time.monotonic()
    prompt_ids = model.prompt_ids(messages)
    sink = prompt_ids[0] == model.tokenizer.bos_token_id
    own = model.greedy(prompt_ids, max_tokens)
    agreement = None
    answer_ids = own
    if model.gguf is not None:
        answer_ids = model.gguf_greedy(prompt_ids, max_tokens)
        agreement = gguf_agreement(model, prompt_ids, answer_ids, own)
    if not answer_ids:
        raise ValueError("the model's answer is empty (it ended its turn at once): nothing to explain.")
    ids = prompt_ids + answer_ids
    tokenizer = model.tokenizer
    prompt_text, prompt_spans = token_spans(tokenizer, prompt_ids)
    full_text, full_spans = token_spans(tokenizer, ids)
    answer = full_text[len(prompt_text) :]
    answer_spans = [(s - len(prompt_text), e - len(prompt_text)) for s, e in full_spans[len(prompt_ids) :]]
    models = {"model": model} if base is None else {"model": model, "base": base}
    traces = {label: trace_answer(m.model, ids, len(prompt_ids)) for label, m in models.items()}
    own_answers = {"model": tokenizer.decode(own)}
    if base is not None:
        own_answers["base"] = base.tokenizer.decode(base.greedy(base.prompt_ids(messages), max_tokens))
    scores = {}
    if passage and reference:
        columns = passage_columns(prompt_text, prompt_spans, passage)
        scores = {
            label: grounding(t.attribution, t.rollout, answer, answer_spans, columns, reference, question or "", sink)
            for label, t in traces.items()
        }
    return Explanation(
        messages=messages,
        model=model.ref,
        prompt_tokens=[prompt_text[s:e] for s, e in prompt_spans],
        answer_tokens=[answer[s:e] for s, e in answer_spans],
        answer=answer,
        traces=traces,
        own_answers=own_answers,
        gguf_agreement=agreement,
        grounding=scores,
        compare=base.ref if base else None,
        sink=sink,
        seconds=time.monotonic() - started,
        peak_rss_mb=peak_rss_mb(),
    )


@dataclass
class HeldOutQuestion:
    question: str
    reference: str
    passage: str  # the seed example's context: the passage that holds the fact
    other_passage: str | None  # another seed example's context, so the passage competes with text on the topic


def held_out_questions(leaf_qna: Path) -> list[HeldOutQuestion]:
    """A knowledge leaf's held-out seed questions (the ones a run never trains on), each with its context."""
    from finch.errors import UsageError
    from finch.taxonomy import Knowledge, check_taxonomy, hold_out

    report = check_taxonomy([leaf_qna], skip_documents=True)
    leaves = [r.leaf for r in report.leaves if isinstance(r.leaf, Knowledge)]
    if len(leaves) != 1:
        raise UsageError(f"--leaf {leaf_qna}: not one valid knowledge leaf (check it with `finch taxonomy check`).")
    examples = leaves[0].seed_examples
    triples = [(i, qa) for i, example in enumerate(examples) for qa in example.questions_and_answers]
    _, held = hold_out(triples)
    questions = []
    for i, qa in held:
        other = examples[(i + 1) % len(examples)].context if len(examples) > 1 else None
        questions.append(HeldOutQuestion(qa.question.strip(), qa.answer.strip(), examples[i].context.strip(), other))
    return questions


def passage_prompt(question: HeldOutQuestion) -> str:
    """Both passages, the one that holds the fact second, then the question."""
    passages = [p for p in (question.other_passage, question.passage) if p]
    text = "\n\n".join(f"Passage {n}:\n{p.strip()}" for n, p in enumerate(passages, 1))
    return f"{text}\n\nAnswer from the passages. {question.question}"
