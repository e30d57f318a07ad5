"""Token lengths of the imported rows in a student's tokens, as `finch train` will count them: a histogram for
report.json and a plot, lengths.png."""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections import Counter
from pathlib import Path
from typing import Any

from finch.plotting import pyplot, save_figure

LENGTH_BINS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)  # upper bounds; a last bin holds the longer rows


def token_lengths(conversations: list[list[dict[str, str]]], model_ref: str, models_dir: Path) -> list[tuple[int, int]]:
    """(tokens, trained tokens) of each conversation, through the trainer's own rendering and labels."""
    from finch.train.data import tokenize_conversation
    from finch.train.rendered import student_chat_tokenizer

    tokenizer, render = student_chat_tokenizer(model_ref, models_dir)
    samples = [tokenize_conversation(tokenizer, render, messages) for messages in conversations]
    return [(len(sample.input_ids), sample.n_labels) for sample in samples]


def length_summary(lengths: list[tuple[int, int]], model_ref: str, max_seq_len: int) -> dict[str, Any]:
    """The histogram of the rows' token lengths, their spread, and how many `finch train` would skip at its
    max_seq_len."""
    tokens = sorted(total for total, _ in lengths)
    counts = Counter(bisect_left(LENGTH_BINS, n) for n in tokens)
    return {
        "model": model_ref,
        "rows": len(tokens),
        "median": statistics.median(tokens),
        "p95": tokens[min(len(tokens) - 1, round(0.95 * (len(tokens) - 1)))],
        "max": tokens[-1],
        "trained_tokens": sum(trained for _, trained in lengths),
        "max_seq_len": max_seq_len,
        "over_max_seq_len": sum(1 for n in tokens if n > max_seq_len),
        "bins": [{"up_to": bound, "rows": counts[i]} for i, bound in enumerate((*LENGTH_BINS, None))],
    }


def plot_lengths(lengths: list[tuple[int, int]], summary: dict[str, Any], path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    ax.hist([total for total, _ in lengths], bins=40, color="tab:blue", alpha=0.8, label="rows")
    ax.axvline(summary["max_seq_len"], color="tab:red", linestyle="--", label=f"max_seq_len {summary['max_seq_len']}")
    ax.set_xlabel(f"tokens per row ({summary['model']})")
    ax.set_ylabel("rows")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
