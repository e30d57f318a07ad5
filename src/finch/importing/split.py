"""The test split of imported rows: a seeded draw, so the same files and seed always hold out the same rows."""

from __future__ import annotations

import random
from typing import TypeVar

T = TypeVar("T")


def split_rows(rows: list[T], test_ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, test), each in the input's order: round(test_ratio x rows) drawn for test, at least one when the
    ratio is above 0 and there are two rows or more, and never every row."""
    count = round(test_ratio * len(rows))
    if test_ratio > 0 and len(rows) >= 2:
        count = min(max(count, 1), len(rows) - 1)
    held = set(random.Random(seed).sample(range(len(rows)), count))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
