"""Terminal output: results go to stdout, progress and messages to stderr (so `--json` output stays clean)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def stage_progress(title: str, stages: Sequence[tuple[str, float]]) -> Iterator:
    """A bar over named stages, weighted by their expected seconds, so the ETA means something.

    Yields `advance(name)`: call it as each stage starts; the previous stage counts as done.
    """
    weights = dict(stages)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = progress.add_task(title, total=sum(weights.values()))
    current: list[str] = []
    started = time.monotonic()

    def advance(name: str) -> None:
        if current:
            progress.advance(task, weights[current[-1]])
        current.append(name)
        progress.update(task, description=f"{title}: {name}")

    with progress:
        yield advance
        if current:
            progress.advance(task, weights[current[-1]])
        progress.update(task, description=f"{title}: done in {time.monotonic() - started:.0f} s")
