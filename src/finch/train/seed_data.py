"""A tiny chat dataset straight from a taxonomy's seed examples: enough for a first, quick training run
(quickstart) before any synthetic data exists. Knowledge answers are asked without their context, so the run
teaches the facts themselves; grounded skill examples keep their context in the question."""

from __future__ import annotations

import json
from pathlib import Path

from finch.fileio import atomic_write_text
from finch.taxonomy.schema import Knowledge, Skill


def seed_rows(report) -> list[dict]:
    rows = []
    for result in report.leaves:
        leaf = result.leaf
        if isinstance(leaf, Knowledge):
            pairs = [(qa.question, qa.answer) for example in leaf.seed_examples for qa in example.questions_and_answers]
            kind = "knowledge"
        elif isinstance(leaf, Skill):
            pairs = [
                (f"{e.context}\n\n{e.question}" if e.context else e.question, e.answer) for e in leaf.seed_examples
            ]
            kind = "skill"
        else:
            continue
        for question, answer in pairs:
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": question.strip()},
                        {"role": "assistant", "content": answer.strip()},
                    ],
                    "metadata": {
                        "leaf": result.name,
                        "kind": kind,
                        "phase": "knowledge" if kind == "knowledge" else "skills",
                    },
                }
            )
    return rows


def write_seed_dataset(report, folder: Path) -> Path:
    """train.jsonl with every seed example; no test split (these few rows are all there is)."""
    rows = seed_rows(report)
    atomic_write_text(folder / "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    return folder
