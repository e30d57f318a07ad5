"""Held-out prompts with reference answers, from a dataset's test.jsonl or any messages-format JSONL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError


@dataclass
class EvalSample:
    messages: list[dict[str, str]]  # the conversation up to the answer
    reference: str
    leaf: str | None = None


def load_eval_samples(path: Path, limit: int | None = None) -> list[EvalSample]:
    """Rows {"messages": [...]} (the last assistant turn is the reference) or {"prompt", "reference"}."""
    file = path / "test.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{file}: no such file; pass --data FILE.jsonl or a dataset folder holding test.jsonl.")
    samples = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "messages" in row:
                messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
                if not messages or messages[-1]["role"] != "assistant":
                    raise ValueError("the last message must be the assistant's reference answer")
                sample = EvalSample(messages[:-1], messages[-1]["content"], (row.get("metadata") or {}).get("leaf"))
            else:
                sample = EvalSample([{"role": "user", "content": row["prompt"]}], row["reference"], row.get("leaf"))
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{file}:{number}: not an evaluation row ({type(e).__name__}: {e}).") from None
        samples.append(sample)
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise UsageError(f"{file}: holds no evaluation rows.")
    return samples


def read_rows(file: Path) -> list[dict]:
    """The JSON objects of a JSONL file, one a line; a line that is not one is an error naming its line."""
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise UsageError(f"{file}:{number}: not a JSON row ({e}).") from None
            if not isinstance(rows[-1], dict):
                raise UsageError(f"{file}:{number}: not a JSON object.")
    return rows
