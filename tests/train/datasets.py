"""Small chat datasets written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

FACTS = [
    ("What colour is the Zorblat fruit?", "The Zorblat fruit is bright purple."),
    ("How many moons does planet Quenta have?", "Planet Quenta has seven moons."),
    ("Who built the Velmor bridge?", "The Velmor bridge was built by Ada Fenn."),
    ("What does a flimble eat?", "A flimble eats river stones."),
]


def chat_rows(n: int, seed: int = 0) -> list[dict]:
    """Variable-length single- and multi-turn rows, some with a system prompt."""
    rows = []
    for i in range(n):
        question, answer = FACTS[(i + seed) % len(FACTS)]
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if i % 3 == 1:
            messages.insert(0, {"role": "system", "content": "Answer in one sentence."})
        if i % 4 == 2:
            messages += [
                {"role": "user", "content": "Say it again, please."},
                {"role": "assistant", "content": answer + " " + "Yes. " * (i % 5)},
            ]
        rows.append({"messages": messages, "metadata": {"leaf": "test", "kind": "knowledge", "phase": "knowledge"}})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_dataset(folder: Path, n_train: int = 24, n_test: int = 8) -> Path:
    write_jsonl(folder / "train.jsonl", chat_rows(n_train))
    write_jsonl(folder / "test.jsonl", chat_rows(n_test, seed=1))
    return folder
