"""Human grading, the protocol of the paper behind finch: a few prompts, several sampled answers from each model,
every answer graded 0-5 by each grader. The sheet is a CSV a spreadsheet opens; models are hidden behind letters in
shuffled rows so graders cannot favour the tuned one, and the key stays in sheet.json beside it."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from finch.errors import UsageError
from finch.evaluate.data import EvalSample
from finch.fileio import atomic_write_json, atomic_write_text

SHEET = "grading_sheet.csv"
KEY = "sheet.json"
COLUMNS = ["row", "prompt_id", "prompt", "reference", "system", "sample", "answer", "grader", "grade", "comment"]
LOW, HIGH = 0, 5


def write_sheet(
    output: Path, samples: list[EvalSample], answers: dict[str, list[list[str]]], models: dict[str, str], seed: int = 0
) -> Path:
    """`answers[label][prompt][sample]`. One row per prompt × model × sample, in a shuffled order."""
    letters = {label: chr(ord("A") + i) for i, label in enumerate(models)}
    rows = [
        {
            "prompt_id": p + 1,
            "prompt": s.messages[-1]["content"],
            "reference": s.reference,
            "system": letters[label],
            "sample": k + 1,
            "answer": answer,
        }
        for label in models
        for p, s in enumerate(samples)
        for k, answer in enumerate(answers[label][p])
    ]
    random.Random(seed).shuffle(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    for number, row in enumerate(rows, 1):
        writer.writerow({**row, "row": number, "grader": "", "grade": "", "comment": ""})
    atomic_write_text(output / SHEET, "\ufeff" + buffer.getvalue())  # the BOM makes spreadsheets read it as UTF-8
    key = {
        "systems": {letters[label]: {"label": label, "model": ref} for label, ref in models.items()},
        "rows": {
            str(n): {
                "label": next(lbl for lbl, c in letters.items() if c == r["system"]),
                "prompt_id": r["prompt_id"],
                "sample": r["sample"],
            }
            for n, r in enumerate(rows, 1)
        },
        "prompts": [s.messages[-1]["content"] for s in samples],
        "scale": [LOW, HIGH],
    }
    atomic_write_json(output / KEY, key)
    return output / SHEET


def read_grades(output: Path, files: list[Path]) -> list[dict]:
    """Every filled-in grade of the graded copies of the sheet: {label, prompt_id, sample, grader, grade}. A blank
    grade is an answer not graded yet; anything else that is not a whole number 0-5 is an error naming the cell."""
    key_file = output / KEY
    if not key_file.is_file():
        raise UsageError(f"{key_file}: no sheet key there; --output must be the folder the sheet was written to.")
    key = json.loads(key_file.read_text())
    grades = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise UsageError(f"--import {file}: cannot read it ({e.strerror}).") from None
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ("row", "grade") if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"--import {file}: no {' or '.join(missing)} column; grade a copy of {SHEET}.")
        for line, row in enumerate(reader, 2):
            grade = (row.get("grade") or "").strip()
            if not grade:
                continue
            entry = key["rows"].get((row.get("row") or "").strip())
            if entry is None:
                raise UsageError(f"{file}:{line}: row {row.get('row')!r} is not a row of the sheet in {output}.")
            try:
                value = float(grade)
            except ValueError:
                value = None
            if value is None or value != int(value) or not LOW <= value <= HIGH:
                raise UsageError(f"{file}:{line}: grade {grade!r} is not a whole number from {LOW} to {HIGH}.")
            grader = (row.get("grader") or "").strip() or file.stem
            grades.append({**entry, "grader": grader, "grade": int(value)})
    if not grades:
        raise UsageError(f"--import {', '.join(map(str, files))}: no grades filled in yet (the grade column is empty).")
    return grades


def grade_results(key: dict, grades: list[dict]):
    """Per model: the mean grade, how many grades and graders; per prompt: each model's mean (for the bars)."""
    labels = [system["label"] for system in key["systems"].values()]
    results, per_sample, per_prompt = {}, {}, {}
    for label in labels:
        mine = [g for g in grades if g["label"] == label]
        values = [float(g["grade"]) for g in mine]
        results[label] = {
            "mean_grade": sum(values) / len(values) if values else None,
            "grades": len(values),
            "graders": len({g["grader"] for g in mine}),
        }
        per_sample[label] = {"mean_grade": values}
        prompts: dict[int, list[float]] = {}
        for g in mine:
            prompts.setdefault(g["prompt_id"], []).append(float(g["grade"]))
        per_prompt[label] = {str(p): sum(v) / len(v) for p, v in sorted(prompts.items())}
    return results, per_sample, per_prompt
