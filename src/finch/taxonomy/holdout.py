"""Which of a leaf's seed examples are its test set: every 5th, and at least one of a leaf that has two or more.

The quickstart's seed dataset and `finch data generate` split by this one rule, so both hold out the same examples:
they are never trained on, and SDG never shows them to its teacher."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

HOLD_OUT_EVERY = 5


def hold_out(examples: list[T]) -> tuple[list[T], list[T]]:
    """(kept, held out) of one leaf's seed examples, each in its original order."""
    held = {i for i in range(len(examples)) if (i + 1) % HOLD_OUT_EVERY == 0}
    if not held and len(examples) >= 2:
        held = {len(examples) - 1}
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]
