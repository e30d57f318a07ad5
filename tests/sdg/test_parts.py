"""The pieces under the pipelines: parsing teacher text, chunking documents, duplicates, pipeline files."""

from __future__ import annotations

import pytest

from finch.errors import UsageError
from finch.fileio import JsonlAppender, read_jsonl
from finch.sdg import load_pipeline
from finch.sdg.chunking import approximate_tokens, chunk_text
from finch.sdg.dedup import NearDuplicates
from finch.sdg.generate import LeafPlan, conform, deduplicate
from finch.sdg.parse import labelled_records, multiple_choice, numbered_items, rating
from finch.sdg.pipeline import load_prompt
from finch.taxonomy import hold_out, sample_taxonomy_dir
from tests.sdg.helpers import skill_plan

DOC = sample_taxonomy_dir() / "knowledge" / "products" / "kestrel_vane_k230" / "kestrel_vane_k230.md"


def test_numbered_items_skip_preamble_join_continuations_and_drop_scraps():
    text = (
        "Sure, here you go:\n1. Write May 5 as a date.\n2) What is the\n   ISO form of 1 June?\n3. ok\n"
        "- Convert 2/3/04 please."
    )
    assert numbered_items(text) == [
        "Write May 5 as a date.",
        "What is the ISO form of 1 June?",
        "Convert 2/3/04 please.",
    ]
    assert numbered_items("no list here at all") == []


def test_labelled_records_keep_complete_ones_and_count_broken_ones():
    text = "1. **Question:** Who made it?\nAnswer: Orlen\nInstruments.\n\nQuestion: And when?\n\nQ: Where?\nA: Dunmere"
    records, broken = labelled_records(text, ["question", "answer"])
    assert records == [
        {"question": "Who made it?", "answer": "Orlen\nInstruments."},
        {"question": "Where?", "answer": "Dunmere"},
    ]
    assert broken == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rating: 4", 4),
        ("**Rating:** 5", 5),
        ("The answer is poor.\nScore: 2", 2),
        ("3", 3),
        ("3/5", 3),
        ("Rating: 9", None),
        ("Looks fine to me!", None),
        ("", None),
        ("I give it 5 stars", None),
    ],
)
def test_rating(text, expected):
    assert rating(text) == expected


def test_multiple_choice_needs_four_distinct_choices_and_an_answer():
    good = "Question: Which frequency?\nA) 868 MHz\nB) 915 MHz\nC) 433 MHz\nD) 2.4 GHz\nAnswer: A"
    assert multiple_choice(good) == {
        "question": "Which frequency?",
        "choices": ["868 MHz", "915 MHz", "433 MHz", "2.4 GHz"],
        "answer": 0,
    }
    assert multiple_choice(good.replace("D) 2.4 GHz\n", "")) is None
    assert multiple_choice(good.replace("Answer: A", "")) is None
    assert multiple_choice(good.replace("915 MHz", "868 MHz")) is None


def test_chunks_fit_the_budget_in_real_tokens_overlap_and_cover_the_document(tiny_gemma3_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)

    def count(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    text = DOC.read_text()
    chunks = chunk_text(text, count, max_tokens=300, overlap=60)
    assert len(chunks) >= 3
    assert all(count(c) <= 300 for c in chunks)
    assert "\n| Wind speed |" in "".join(chunks)  # a long table is split between rows, not inside them

    def shared(chunks):  # boundaries where the next chunk starts with text the previous one ends with
        return sum(any(a.endswith(b[:n]) for n in (40,)) or b[:40] in a for a, b in zip(chunks, chunks[1:]))

    assert shared(chunks) >= len(chunks) // 2
    assert shared(chunk_text(text, count, max_tokens=300, overlap=0)) == 0
    assert set(text.split()) == set(" ".join(chunks).split())  # nothing dropped
    with pytest.raises(ValueError):
        chunk_text(text, approximate_tokens, max_tokens=50, overlap=50)


def test_near_duplicates():
    seen = NearDuplicates()
    seen.add("Write March 5th, 2021 as an ISO 8601 date for the shop's order form.")
    assert seen.check("write march 5th 2021 as an ISO 8601 date for the shop's order form") == "exact"
    assert seen.check("Please write March 5th, 2021 as an ISO 8601 date for the shop's order form.") == "near"
    assert seen.check("What is the capital of France, and when was it founded?") is None


def test_dedup_drops_what_matches_the_held_out_seeds_and_counts_what_copies_a_shown_one():
    seeds = [
        {"question": f"Write day {n} of month {n + 1} in the year {2000 + n} as an ISO date.", "answer": "x"}
        for n in range(1, 6)
    ]
    shown, held_out = hold_out(seeds)
    plan = skill_plan("dates", shown, held_out=held_out)
    fresh = {"question": "What is the first of May 1990 in ISO 8601 format?", "answer": "1990-05-01"}
    items = [dict(shown[0]), dict(shown[0]), {"question": held_out[0]["question"] + "!", "answer": "y"}, fresh]
    kept, stats = deduplicate(items, plan)
    assert kept == [shown[0], fresh]
    assert stats["rejected"] == {"duplicate": 1, "matches_test": 1} and stats["seed_copies"] == 1
    assert "seed_copies" not in deduplicate([fresh], plan)[1]


def test_a_leaf_of_json_answers_keeps_only_json_answers_with_its_keys_written_as_its_seeds_write_them():
    names = ["Ann", "Bo", "Cy"]
    seeds = [
        {
            "context": f"Hi, {name} here: {n} mugs please.",
            "question": "Extract the order as JSON.",
            "answer": f'{{"name": "{name}", "quantity": {n}}}\n',
        }
        for n, name in enumerate(names)
    ]
    plan = skill_plan("orders", seeds, "skills_grounded")
    context = {"context": "Dee wants 4 mugs.", "question": "What did Dee order?"}
    items = [
        {**context, "answer": '```json\n{\n  "name": "Dee",\n  "quantity": 4\n}\n```'},  # fenced, spread out
        {**context, "question": "And Eve?", "answer": '{"name": "Eve"}'},  # a key missing
        {**context, "question": "And Fay?", "answer": "Fay ordered 4 mugs."},  # not JSON
    ]
    kept, stats = deduplicate(conform(items, plan), plan)
    assert [item["answer"] for item in kept] == ['{"name": "Dee", "quantity": 4}']
    assert stats["rejected"] == {"format": 2}
    prose = LeafPlan(**{**vars(plan), "examples": [{**seeds[0], "answer": "Ann ordered 0 mugs."}, *seeds[1:]]})
    assert conform(items, prose) == items  # seeds of mixed forms: no format to hold answers to


def test_jsonl_appender_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with JsonlAppender(path) as out:
        out.append({"a": 1})
    with open(path, "a") as f:
        f.write('{"a": 2, "b"')
    assert read_jsonl(path) == [{"a": 1}]
    with JsonlAppender(path) as out:
        out.append({"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]


def test_pipelines_are_data_and_a_user_file_can_override_them(tmp_path):
    assert [b.name for b in load_pipeline("full").skills_freeform] == [
        "instructions",
        "judge_instructions",
        "responses",
        "judge_responses",
    ]
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "mine.yaml").write_text(
        "user: 'Write {{ count }} new questions for this task: {{ task }}'\n"
    )
    own = tmp_path / "mine.yaml"
    own.write_text(
        "knowledge: [{name: qa, type: expand, prompt: knowledge_qa, fields: [question, answer]}]\n"
        "skills_freeform: [{name: q, type: expand, prompt: mine, fields: [question]}]\n"
        "skills_grounded: [{name: q, type: expand, prompt: simple_skill, fields: [context, question, answer]}]\n"
    )
    assert load_pipeline(str(own)).name == "mine"
    own.write_text(own.read_text().replace("prompt: mine", "prompt: missing"))
    with pytest.raises(UsageError, match="prompt 'missing': no missing.yaml"):
        load_pipeline(str(own))
    own.write_text("knowledge: [{name: j, type: judge, prompt: judge_pair}]\n")
    with pytest.raises(UsageError, match="needs 'threshold'"):
        load_pipeline(str(own))
    with pytest.raises(UsageError, match="choose simple or full"):
        load_pipeline("fancy")


def test_a_prompt_prefill_starts_the_answer_with_the_first_field_of_its_format():
    pipeline = load_pipeline("simple")
    simple_skill = load_prompt(pipeline, "simple_skill")
    freeform = [{"question": "Write May 5 as a date.", "answer": "2024-05-05"}]
    grounded = [{"context": "Order 12 ships today.", **freeform[0]}]
    assert simple_skill.answer_start(examples=freeform, count=2, task="t") == "Question:"
    assert simple_skill.answer_start(examples=grounded, count=2, task="t") == "Context:"
    assert load_prompt(pipeline, "knowledge_qa").answer_start() == "Question:"
    assert load_prompt(load_pipeline("full"), "mcq").answer_start() == "Question:"
    assert load_prompt(pipeline, "response").answer_start() == ""  # a free answer has no format to start


def test_every_passage_of_a_knowledge_document_is_asked_about_and_each_chunk_gets_one_exam_question(tmp_path):
    from finch.sdg.generate import GenerateOptions, block_calls, plan_leaf
    from finch.taxonomy import check_taxonomy

    [leaf] = [r for r in check_taxonomy([sample_taxonomy_dir()]).leaves if r.kind == "knowledge"]
    plan = plan_leaf(leaf, GenerateOptions(output=tmp_path, scale=1), approximate_tokens)
    chunks = {source["chunk"] for source in plan.sources}
    assert len(plan.sources) > 3 * len(chunks) > 3
    assert all(set(s["focus"].split()) <= set(s["chunk"].split()) for s in plan.sources)
    pipeline = load_pipeline("full")
    [mcq, qa, _, _] = pipeline.knowledge
    asked = block_calls(pipeline, qa, plan, plan.sources, seed=1, index=1)
    assert plan.target < len(plan.sources) * qa.per_call  # a small --scale ...
    assert {call.item["id"] for call in asked} == {s["id"] for s in plan.sources}  # ... still covers every passage
    assert all(call.item["focus"] in call.messages[-1]["content"] for call in asked)
    exam = block_calls(pipeline, mcq, plan, plan.sources, seed=1, index=0)
    assert sorted(call.item["chunk"] for call in exam) == sorted(chunks)
    simple = load_pipeline("simple").knowledge[0]  # a quick look asks for the target and no more
    assert len(block_calls(pipeline, simple, plan, plan.sources, seed=1, index=0)) == -(-plan.target // simple.per_call)


def test_a_passage_dense_with_facts_is_asked_more_questions_than_a_sparse_one(tmp_path):
    from finch.sdg.generate import GenerateOptions, block_calls, plan_leaf
    from finch.sdg.pipeline import MAX_PER_CALL
    from finch.taxonomy import check_taxonomy

    [leaf] = [r for r in check_taxonomy([sample_taxonomy_dir()]).leaves if r.kind == "knowledge"]
    plan = plan_leaf(leaf, GenerateOptions(output=tmp_path, scale=1), approximate_tokens)
    pipeline = load_pipeline("full")
    qa = pipeline.knowledge[1]
    calls = block_calls(pipeline, qa, plan, plan.sources, seed=1, index=1)
    counts = {call.item["focus"]: call.count for call in calls}
    codes = next(count for focus, count in counts.items() if "E09" in focus)  # a table of error codes
    sparse = next(count for focus, count in counts.items() if "true north" in focus)  # one instruction
    assert sparse == qa.per_call < codes <= MAX_PER_CALL
    fixed = qa.model_copy(update={"per_fact": None})
    assert {c.count for c in block_calls(pipeline, fixed, plan, plan.sources, seed=1, index=1)} == {qa.per_call}
    assert all(call.params.max_tokens >= 150 * call.count for call in calls)  # room for every pair asked


def test_cover_asks_for_the_key_facts_no_kept_answer_states_and_keeps_only_pairs_that_state_one(tmp_path):
    from dataclasses import replace

    from finch.evaluate.key_facts import facts_held
    from finch.sdg.generate import GenerateOptions, apply_block, block_calls, fact_coverage, passage_facts, plan_leaf
    from finch.sdg.pipeline import MAX_PER_CALL
    from finch.taxonomy import check_taxonomy

    [leaf] = [r for r in check_taxonomy([sample_taxonomy_dir()]).leaves if r.kind == "knowledge"]
    plan = plan_leaf(leaf, GenerateOptions(output=tmp_path, scale=1), approximate_tokens)
    pipeline = load_pipeline("full")
    cover = pipeline.knowledge[3]
    assert cover.type == "cover"
    source = next(s for s in plan.sources if "every 16 seconds" in s["focus"])
    kept = {**source, "question": "How often does the Mast Unit report?", "answer": "Every 16 seconds."}
    calls = block_calls(pipeline, cover, plan, [kept], seed=1, index=3)
    asked = [fact for call in calls for fact in call.item["missing"]]
    every = fact_coverage(plan, [])
    # all but the facts the kept answer states, in any passage of its chunk ("16 seconds", and the table's "16")
    same_chunk = [facts for s, facts, _ in every if s["chunk"] == source["chunk"]]
    stated = sum(sum(facts_held(kept["answer"], facts)) for facts in same_chunk)
    assert len(asked) == sum(len(facts) for _, facts, _ in every) - stated and stated >= 1
    mine = [call for call in calls if call.item["focus"] == source["focus"]]
    assert mine and "16 seconds" not in mine[0].item["missing"] and "868 MHz" in mine[0].item["missing"]
    assert all(0 < call.count == len(call.item["missing"]) <= MAX_PER_CALL for call in calls)
    assert all(f"- {fact}" in call.messages[-1]["content"] for call in calls for fact in call.item["missing"])
    assert passage_facts("## 3. Specifications\nIt weighs 1.4 kg.") == ["1.4 kg"]  # a heading's number is no fact

    call = mine[0]
    answers = [
        ("At what frequency does the K-230's radio work?", "The radio of the K-230 works at 868 MHz."),  # kept
        ("Which frequency does the K-230 radio use?", "868 MHz."),  # kept: a bare answer still states its fact
        ("Does the K-230's radio work at 868 MHz?", "Yes, it works at 868 MHz."),  # the question gives it away
        ("What frequency does the radio use?", "It works at 868 MHz or 433 MHz."),  # 433 MHz: not in the excerpt
        ("What does the radio do?", "It sends readings."),  # no missing fact at all
    ]
    text = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in answers)
    record = apply_block(cover, replace(call, count=len(answers)), text, "stop")
    assert [item["answer"] for item in record["items"]] == [answers[0][1], answers[1][1]]
    assert record["items"][0]["covers"] == ["868 MHz"] and "missing" not in record["items"][0]
    assert record["rejected"] == {"no_missing_fact": 2, "ungrounded": 1}
    capped = replace(plan, limit=3)  # --limit-per-leaf: a quick run asks nothing beyond its cap
    assert block_calls(pipeline, cover, capped, [kept], seed=1, index=3) == []
