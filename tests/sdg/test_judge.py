"""Judging by the teacher's probabilities over the rating digits, calibrated on anchors with a known verdict.

The teacher here is the scripted one over real HTTP for everything it writes, plus a scripted next-token
distribution for the judges (what a local llama.cpp teacher gives through `next_token_probs`)."""

from __future__ import annotations

import json

import pytest

from finch.inference import GenerationParams
from finch.inference.base import Abilities
from finch.inference.http_backend import HttpBackend
from finch.sdg import GenerateOptions, generate_dataset, load_pipeline
from finch.sdg.generate import anchor_calls
from finch.sdg.judge import OFF_TOPIC, anchor_scale, anchors, calibrate, expected_rating
from finch.taxonomy import hold_out
from tests.sdg.helpers import generated_rows, journals, sample_leaves, skill_plan
from tests.sdg.teacher import judged_item

GOOD = {"1": 0.15, "3": 0.1, "5": 0.6, "dash": 0.15}  # expected rating 3.88
BAD = {"1": 0.5, "3": 0.1, "5": 0.3, "dash": 0.1}  # expected rating 2.56
GARBLED = {"1": 0.1, "5": 0.1, "dash": 0.8}  # the digits hold too little: no rating


def test_expected_rating_is_the_mean_over_the_digits_only():
    assert expected_rating(GOOD) == pytest.approx((0.15 + 0.3 + 3.0) / 0.85)
    assert expected_rating({"2": 0.3, "4": 0.3}) == pytest.approx(3.0)
    assert expected_rating(GARBLED) is None


def test_calibration_puts_the_anchors_on_5_and_1():
    assert calibrate(3.5, good=3.5, bad=3.0) == 5.0
    assert calibrate(3.0, good=3.5, bad=3.0) == 1.0
    assert calibrate(3.375, good=3.5, bad=3.0) == 4.0
    assert calibrate(4.9, good=3.5, bad=3.0) == 5.0 and calibrate(1.2, good=3.5, bad=3.0) == 1.0


def _anchor_records(good, bad):
    return [{"anchor": "good", "rating": r} for r in good] + [{"anchor": "bad", "rating": r} for r in bad]


def test_a_judge_whose_anchors_are_not_apart_beyond_noise_has_no_scale():
    # the built-in teacher's answer judge on one leaf: good anchors barely above the bad ones, within noise
    assert anchor_scale(_anchor_records([3.48, 3.31, 3.35, 3.40], [3.30, 3.43, 3.25, 3.36])) is None
    # its question judge on the same leaf: apart by several standard errors
    good, bad = anchor_scale(_anchor_records([3.19, 3.34, 3.16, 3.25], [3.09, 2.98, 3.00, 3.05]))
    assert good == pytest.approx(3.235) and bad == pytest.approx(3.03)
    assert anchor_scale(_anchor_records([3.0, 3.0], [3.5, 3.5])) is None  # bad above good
    assert anchor_scale(_anchor_records([3.5], [3.0, 3.1])) is None  # one anchor is no evidence
    assert anchor_scale(_anchor_records([3.5, 3.5], [3.0, 3.0])) == (3.5, 3.0)  # no spread: any gap tells


def test_anchors_are_unseen_seed_examples_as_they_are_and_spoiled():
    examples = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]
    shown = examples[:2]
    pairs = anchors(examples, shown, "answer")
    assert [v for v, _ in pairs] == ["good", "bad"] * 4
    goods = [item for v, item in pairs if v == "good"]
    assert goods == examples[2:6]  # never an example the judge's prompt shows
    assert [item["answer"] for v, item in pairs if v == "bad"] == ["a3", "a4", "a5", "a0"]
    questions = anchors(examples, shown, "question")
    assert [item["question"] for v, item in questions if v == "bad"] == list(OFF_TOPIC)
    knowledge = anchors([{"question": "q", "answer": "a", "context": "c"}] * 2, [], "answer")
    assert knowledge[0][1]["chunk"] == "c" and len(knowledge) == 2  # no other answer: no spoiled anchor


def test_a_five_example_leaf_calibrates_on_its_held_out_example_too():
    # four shown, three of them in the judge's prompt: one unseen shown example alone is too few anchors (two a side
    # is the least anchor_scale reads), so the held-out one is rated as well; an anchor never becomes a row
    seeds = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)]
    shown, held_out = hold_out(seeds)
    plan = skill_plan("s", shown, sources=[{"id": "seed"}], target=5, held_out=held_out)
    pipeline = load_pipeline("full")
    block = next(b for b in pipeline.skills_freeform if b.name == "judge_responses")
    calls = anchor_calls(pipeline, block, plan, seed=42)
    good = [c.item for c in calls if c.anchor == "good"]
    assert len(good) == 2 and held_out[0] in good and len(calls) == 4
    assert all(c.params.max_tokens == 1 for c in calls)


class LocalTeacher:
    """The scripted HTTP teacher for text, and a scripted next-token distribution for judges: good for the seed
    examples and the teacher's good items, bad for spoiled anchors and its off-topic or wrong items."""

    name = "llama-cpp"
    abilities = Abilities(choice_probs=True)

    def __init__(self, url: str, can_tell: bool = True):
        self.http = HttpBackend(url, retries=0)
        self.model_name = self.http.model_name
        self.can_tell = can_tell
        self.seeds = [(e["key"], e["answer"].strip()) for leaf in sample_leaves() for e in _examples(leaf)]
        self.asked: list[str] = []

    def chat(self, conversations, params):
        return self.http.chat(conversations, params)

    def next_token_probs(self, messages, answer_prefix, choices):
        if (answer_prefix, choices) == ("Answer: ", ["A", "B", "C", "D"]):  # its own multiple-choice question
            [[answer]] = self.http.chat([messages], GenerationParams(temperature=0, max_tokens=8))
            return {c: float(answer.text.startswith(c)) for c in choices}
        assert answer_prefix == "Rating: " and choices == ["1", "2", "3", "4", "5"]
        item = judged_item("\n".join(m["content"] for m in messages))
        self.asked.append(item)
        if not self.can_tell:
            return {c: GOOD.get(c, 0.0) for c in choices}
        if "GARBLED" in item:
            return {c: GARBLED.get(c, 0.0) for c in choices}
        answers = {a for _, a in self.seeds if "Answer: " + a in item}
        spoiled = any(q in item for q in OFF_TOPIC) or any(k in item and answers - {a} for k, a in self.seeds)
        bad = spoiled or "OFFTOPIC" in item or "BADANSWER" in item
        return {c: (BAD if bad else GOOD).get(c, 0.0) for c in choices}

    def close(self):
        self.http.close()


def _examples(leaf):
    """Seed examples with what tells them apart: the question, or the passage where all ask the same."""
    if hasattr(leaf.leaf, "document_outline"):
        return [
            {"key": qa.question, "answer": qa.answer} for e in leaf.leaf.seed_examples for qa in e.questions_and_answers
        ]
    return [{"key": (e.context or e.question).strip(), "answer": e.answer} for e in leaf.leaf.seed_examples]


def _generate(backend, output):
    try:
        return generate_dataset(
            sample_leaves(), backend, load_pipeline("full"), GenerateOptions(output=output, scale=2)
        )
    finally:
        backend.close()


def test_probability_judges_calibrate_on_anchors_and_drop_what_they_must(teacher, tmp_path):
    backend = LocalTeacher(teacher.url)
    report = _generate(backend, tmp_path / "d")
    emitted = teacher.emitted
    assert not any("Rating" in text for text in _judge_requests(teacher))  # judges never asked for text
    reasons: dict[str, int] = {}
    for leaf in report["leaves"]:
        assert leaf["train"] > 0, leaf
        for stage in leaf["stages"]:
            assert "abstained" not in stage
            for reason, n in stage["rejected"].items():
                reasons[reason] = reasons.get(reason, 0) + n
    assert reasons["low_rating"] == emitted["offtopic"] + emitted["wrong"]
    assert reasons["unparseable_rating"] == emitted["garbled"]
    for row in generated_rows(tmp_path / "d" / "train.jsonl"):
        if row["metadata"].get("covers"):  # a pair for a missing key fact: checked by rules, not judged
            assert row["metadata"]["scores"] == {}
            continue
        assert set(row["metadata"]["scores"].values()) == {5.0}  # rated like the seed examples
    # every judge stage rated its anchors first, in its journal, without counting them as samples
    for name, records in journals(tmp_path / "d").items():
        if "judge" not in name:
            continue
        n = sum("anchor" in r for r in records)  # up to 4 a side: the seed examples the judge's prompt does not show
        assert n >= 4 and [r.get("anchor") for r in records[:n]] == ["good", "bad"] * (n // 2) and n < len(records)
        assert all(r["generated"] == 0 for r in records[:n])
        good = [r["rating"] for r in records[:n] if r["anchor"] == "good"]
        assert good == [pytest.approx(expected_rating(GOOD), abs=1e-3)] * (n // 2)


def test_a_judge_that_cannot_tell_its_anchors_apart_abstains_and_says_so(teacher, tmp_path):
    report = _generate(LocalTeacher(teacher.url, can_tell=False), tmp_path / "d")
    judged = [s for leaf in report["leaves"] for s in leaf["stages"] if s["stage"].startswith("judge")]
    assert judged and all(s["abstained"] == s["kept"] == s["generated"] > 0 for s in judged)
    assert all(not s["rejected"] for s in judged)
    train = generated_rows(tmp_path / "d" / "train.jsonl")
    assert train and all(v is None for r in train for v in r["metadata"]["scores"].values())
    assert json.loads((tmp_path / "d" / "report.json").read_text()) == report


def _judge_requests(teacher) -> list[str]:
    return [m["content"] for body in teacher.requests for m in body["messages"] if "Reply in the form" in m["content"]]
