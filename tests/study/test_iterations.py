"""finch study iterations on a tiny model: one run, 4 checkpoints, the base and each checkpoint scored, a blind sheet
graded by two simulated graders read back and plotted against iterations, and a study that continues, not restarts."""

from __future__ import annotations

import csv
import json

from tests.conftest import run_finch
from tests.train.datasets import write_dataset

STEPS = [2, 4, 6, 8]


def grade_sheet(sheet, graded, grader: str, grades_of: dict[str, int], key: dict) -> None:
    """A grader's copy of the sheet: every row graded by which model wrote it (the key says which letter is which)."""
    label_of = {letter: system["label"] for letter, system in key["systems"].items()}
    with open(sheet, encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["grader"], row["grade"] = grader, grades_of[label_of[row["system"]]]
    with open(graded, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_quality_against_iterations_with_two_graders(finch_home, tmp_path, tiny_gemma3_dir):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "study"
    settings = {"--output": out, "--steps": ",".join(map(str, STEPS)), "--prompts": 2, "--samples": 3}
    args = ["study", "iterations", "--data", str(data), "--model", str(tiny_gemma3_dir), "--max-tokens", "6"]
    args += [str(part) for flag, value in settings.items() for part in (flag, value)]
    first = run_finch(*args)
    assert first.returncode == 0, first.stderr
    report = json.loads((out / "report.json").read_text())
    assert [row["step"] for row in report["table"]] == [0, *STEPS]
    assert all(row["eval_loss"] is not None for row in report["table"][1:])  # an eval at every checkpoint
    assert report["score"] == "key_fact_fraction" and report["recommended"]["step"] in STEPS
    for name in ("score-per-prompt.png", "mean-vs-steps.png", "prompts-side-by-side.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert "Recommended: step" in first.stdout
    assert "training 8 steps: about" in first.stderr  # the ETA, before the first step

    key = json.loads((out / "human" / "sheet.json").read_text())
    with open(out / "human" / "grading_sheet.csv", encoding="utf-8-sig") as f:
        assert len(list(csv.DictReader(f))) == 2 * 3 * (1 + len(STEPS))  # prompts x samples x models
    # Two graders who both think step 4 is best, and the base worst.
    grades = {"base": 0, "step 2": 2, "step 4": 5, "step 6": 3, "step 8": 1}
    grade_sheet(out / "human" / "grading_sheet.csv", tmp_path / "ada.csv", "ada", grades, key)
    grade_sheet(out / "human" / "grading_sheet.csv", tmp_path / "bo.csv", "bo", {**grades, "step 6": 4}, key)
    run_log = (out / "run" / "train_log.jsonl").read_text()
    graded = run_finch(*args, "--import", str(tmp_path / "ada.csv"), "--import", str(tmp_path / "bo.csv"))
    assert graded.returncode == 0, graded.stderr
    assert (out / "run" / "train_log.jsonl").read_text() == run_log  # the run was not trained again
    report = json.loads((out / "report.json").read_text())
    assert report["score"] == "mean_grade"
    by_step = {row["step"]: row for row in report["table"]}
    assert by_step[4]["mean_grade"] == 5.0 and by_step[6]["mean_grade"] == 3.5 and by_step[0]["grades"] == 12
    assert report["recommended"]["step"] == 4
