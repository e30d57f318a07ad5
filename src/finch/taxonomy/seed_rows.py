"""A taxonomy's seed examples as chat rows, as SDG, training and evaluation all read them: the held-out questions of
base-vs-tuned evaluations, and a tiny dataset for a first quick run before any synthetic data exists. Knowledge
answers are asked without their context, so a run learns the facts themselves; grounded skill examples keep their
context in the question."""

from __future__ import annotations

import json
from pathlib import Path

from finch.fileio import atomic_write_text
from finch.taxonomy.holdout import hold_out
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


def split_seed_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(train, test): each leaf's held-out seed examples (finch.taxonomy.hold_out) are the test set, so base vs
    tuned can be compared on questions the run never saw."""
    by_leaf: dict[str, list[dict]] = {}
    for row in rows:
        by_leaf.setdefault(row["metadata"]["leaf"], []).append(row)
    train, test = [], []
    for leaf_rows in by_leaf.values():
        kept, held = hold_out(leaf_rows)
        train += kept
        test += held
    return train, test


def write_seed_dataset(report, folder: Path) -> Path:
    """train.jsonl and test.jsonl (split_seed_rows) from the taxonomy's seed examples."""
    train, test = split_seed_rows(seed_rows(report))
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        atomic_write_text(folder / name, "".join(json.dumps(row) + "\n" for row in rows))
    return folder
