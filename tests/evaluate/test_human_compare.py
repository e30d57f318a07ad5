"""Human grading (a blind sheet out, graded copies back in) and `evaluate compare` across checkpoints."""

from __future__ import annotations

import csv
import json

import pytest

from finch.errors import UsageError
from finch.evaluate.compare import compare, training_step
from finch.evaluate.run import evaluate
from tests.conftest import assert_one_line_error, run_finch
from tests.evaluate.stub import stub_server
from tests.tiny_models import write_tiny_lora


def write_prompts(path, n=6):
    rows = [
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Fact {i}."}]}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def grade_copy(sheet, target, grader, grade_for):
    """A grader's filled-in copy: grade_for(row) gives the grade text, or "" to leave it blank."""
    with sheet.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    with target.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, rows[0].keys())
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "grader": grader, "grade": grade_for(row)})
    return target


def test_human_sheet_then_import(tmp_path):
    data = write_prompts(tmp_path / "test.jsonl")
    out = tmp_path / "human"
    with stub_server(lambda m: "I am not sure.") as base, stub_server(lambda m: "It is the fact.") as tuned:
        results = evaluate({"base": base.url, "tuned": tuned.url}, "human", data, out, tmp_path / "models")
        assert all(r["n"] == 3 and r["temperature"] == 0.7 for r in tuned.requests)
    assert results["tuned"] == {"mean_grade": None, "grades": 0, "graders": 0}
    sheet = out / "grading_sheet.csv"
    with sheet.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * 2 * 3  # the paper's protocol: 5 prompts x 3 samples per model
    assert {r["system"] for r in rows} == {"A", "B"} and tuned.url not in sheet.read_text()  # graders see letters
    assert [r["system"] for r in rows] != sorted(r["system"] for r in rows)  # shuffled, not base first
    assert json.loads((out / "report.json").read_text())["status"] == "awaiting grades"

    def by_answer(high, only_first_sample=False):
        def grade(row):
            if only_first_sample and row["sample"] != "1":
                return ""  # not graded yet: left out, not a zero
            return str(high) if "fact" in row["answer"] else "1"

        return grade

    ann = grade_copy(sheet, tmp_path / "ann.csv", "ann", by_answer(4))
    bob = grade_copy(sheet, tmp_path / "bob.csv", "bob", by_answer(5, only_first_sample=True))
    graded = evaluate({}, "human", None, out, tmp_path / "models", imports=[ann, bob])
    assert graded["base"] == {"mean_grade": 1.0, "grades": 15 + 5, "graders": 2}
    tuned_grades = [4] * 15 + [5] * 5
    assert graded["tuned"]["mean_grade"] == pytest.approx(sum(tuned_grades) / len(tuned_grades))
    report = json.loads((out / "report.json").read_text())
    assert report["results"] == graded and set(report["per_prompt"]["base"]) == {"1", "2", "3", "4", "5"}
    assert (out / "human-per-prompt.png").read_bytes()[:4] == b"\x89PNG"
    assert "2 graders" in (out / "report.md").read_text()

    bad = grade_copy(sheet, tmp_path / "bad.csv", "cy", lambda row: "7" if row["row"] == "3" else "2")
    with pytest.raises(UsageError, match=r"bad.csv:4: grade '7' is not a whole number from 0 to 5"):
        evaluate({}, "human", None, out, tmp_path / "models", imports=[bad])
    with pytest.raises(UsageError, match="no grades filled in"):
        evaluate(
            {},
            "human",
            None,
            out,
            tmp_path / "models",
            imports=[grade_copy(sheet, tmp_path / "e.csv", "x", lambda row: "")],
        )


def test_human_import_needs_output(finch_home, tmp_path):
    assert_one_line_error(
        run_finch("evaluate", "--benchmark", "human", "--import", str(tmp_path / "g.csv")), 2, "--import: needs output"
    )


def test_training_step(tmp_path):
    assert training_step(str(tmp_path / "run" / "checkpoints" / "step-0000250")) == 250
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 100, "loss": 1.0}\n')
    assert training_step(str(run)) == 100
    assert training_step("gemma-3-270m") is None


def test_compare_checkpoints_and_reports(tiny_llama_dir, tmp_path):
    data = write_prompts(tmp_path / "test.jsonl", n=3)
    runs = []
    for seed, steps in ((1, 100), (2, 250)):
        run = write_tiny_lora(tiny_llama_dir, tmp_path / f"run{steps}", seed=seed)
        (run / "train_log.jsonl").write_text(json.dumps({"step": steps, "loss": 1.0}) + "\n")
        runs.append(str(run))
    out = tmp_path / "compare"
    result = compare(runs, "metrics", out, tmp_path / "models", data=data, max_tokens=6)
    assert result["steps"] == {"run100": 100, "run250": 250}
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"] == "compare-metrics" and set(report["results"]) == {"run100", "run250"}
    assert len(report["per_sample"]["run100"]["rouge_l"]) == 3
    assert set(report["per_prompt"]["run250"]) == {"1", "2", "3"}
    for png in ("compare-metrics.png", "metrics-per-prompt.png", "metrics-vs-steps.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # An earlier report joins the comparison without being run again.
    again = compare(
        [str(out / "runs"), runs[0]], "metrics", tmp_path / "again", tmp_path / "models", data=data, max_tokens=6
    )
    assert set(again["results"]) == {"runs:run100", "runs:run250", "run100"}
    assert again["results"]["runs:run100"] == again["results"]["run100"]  # greedy: the same answers, the same scores
    with pytest.raises(UsageError, match="a metrics report, not mt_bench"):
        compare([str(out / "runs"), runs[0]], "mt_bench", tmp_path / "x", tmp_path / "models")


def test_compare_cli(tmp_path, finch_home):
    data = write_prompts(tmp_path / "test.jsonl", n=2)
    with stub_server(lambda m: "Fact 1.") as good, stub_server(lambda m: "No idea.") as bad:
        result = run_finch(
            "evaluate", "compare", good.url, bad.url, "--data", str(data), "--output", str(tmp_path / "c")
        )
    assert result.returncode == 0, result.stderr
    assert "compare metrics" in result.stdout and "rouge_l" in result.stdout
    assert_one_line_error(run_finch("evaluate", "compare", "only-one"), 2, "at least two")
