"""How the library says how far a long step has got without drawing anything itself: the CLI installs a view for
its stage bars (finch.cli.ui.stage_progress); a program that calls the library without one sees nothing drawn."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

Advance = Callable[[str], None]  # called with each stage's name as it starts
StageView = Callable[[str, Sequence[tuple[str, float]]], AbstractContextManager[Advance]]

_view: StageView | None = None


def show_stages_with(view: StageView | None) -> None:
    """The view every later `stages(...)` reports to (None: nobody watches)."""
    global _view
    _view = view


@contextmanager
def stages(title: str, weights: Sequence[tuple[str, float]]) -> Iterator[Advance]:
    """A step made of named stages, each with its expected seconds (so a view's ETA means something). Yields
    `advance(name)`: call it as each stage starts; the previous one counts as done."""
    if _view is None:
        yield lambda name: None
        return
    with _view(title, weights) as advance:
        yield advance
