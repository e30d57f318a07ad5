"""Heatmaps of answer tokens (rows) over prompt tokens (columns), with the tokens as labels.

Most heads park much of their weight on the first token (an attention sink, usually <bos>), which would paint
every other cell white; the colour scale ignores column 0 when it holds the sink, and each plot says so. Figures
use constrained layout, so saving them takes one drawing pass (no "tight" bounding-box pass).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finch.plotting import pyplot, save_figure


def label(token: str) -> str:
    """A token as a tick label: whitespace made visible, long pieces cut."""
    text = token.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "·")
    return text if len(text) <= 14 else text[:13] + "…"


MAX_X_LABELS = 450  # rotated 6-pt labels need ~13 px each: about what a 60-inch figure at 100 dpi holds


def _scale(matrix: np.ndarray, sink: bool, signed: bool) -> tuple[float, float]:
    values = np.abs(matrix[:, 1:] if sink and matrix.shape[1] > 1 else matrix)
    top = float(np.percentile(values, 99.5)) or float(values.max()) or 1.0
    return (-top, top) if signed else (0.0, top)


def _heatmap(
    ax,
    matrix,
    prompt_tokens,
    answer_tokens,
    title: str,
    sink: bool,
    signed: bool,
    ticks: bool = True,
    x_labels: bool = True,
):
    low, high = _scale(matrix, sink, signed)
    image = ax.imshow(
        matrix, aspect="auto", cmap="RdBu_r" if signed else "viridis", vmin=low, vmax=high, interpolation="nearest"
    )
    ax.set_title(title, fontsize=9, loc="left")
    # Tick objects are costly in matplotlib (500 prompt tokens x 4 heads took seconds): only labelled axes get them,
    # and a prompt longer than the figure can label gets every step-th token labelled (a knowledge leaf's ~1,000
    # tokens took ~12 s a map, their labels overlapping); explain.html shows every token.
    if ticks and x_labels:
        step = -(-len(prompt_tokens) // MAX_X_LABELS)
        positions = range(0, len(prompt_tokens), step)
        ax.set_xticks(positions, [label(prompt_tokens[i]) for i in positions], rotation=90, fontsize=6)
        if step > 1:
            ax.set_xlabel(f"prompt tokens, one in {step} labelled (explain.html shows them all)", fontsize=7)
    else:
        ax.set_xticks([])
    if ticks:
        ax.set_yticks(range(len(answer_tokens)), [label(t) for t in answer_tokens], fontsize=6)
    else:
        ax.set_yticks([])
    return image


def _size(prompt_len: int, answer_len: int, panels: int = 1) -> tuple[float, float]:
    return min(4 + 0.13 * prompt_len, 60), min(panels * (1.5 + 0.16 * answer_len), 200)


def plot_map(
    path: Path, matrix, prompt_tokens, answer_tokens, title: str, sink: bool, signed: bool, per_row: bool = False
) -> Path:
    """per_row: each row scaled to its largest |value|, so a token with small gradients still shows its pattern."""
    plt = pyplot()
    if per_row:
        matrix = matrix / np.maximum(np.abs(matrix).max(-1, keepdims=True), 1e-30)
        title += " (each row scaled to its largest |value|)"
    fig, ax = plt.subplots(figsize=_size(len(prompt_tokens), len(answer_tokens)), layout="constrained")
    image = _heatmap(ax, matrix, prompt_tokens, answer_tokens, title, sink, signed)
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    return save_figure(fig, path)


def plot_layer(path: Path, layer: int, heads: np.ndarray, prompt_tokens, answer_tokens, sink: bool) -> Path:
    """One layer: a heatmap per head, stacked."""
    plt = pyplot()
    fig, axes = plt.subplots(
        len(heads),
        1,
        figsize=_size(len(prompt_tokens), len(answer_tokens), len(heads)),
        squeeze=False,
        layout="constrained",
    )
    for head, ax in enumerate(axes[:, 0]):
        note = " (colour scale ignores the first token, an attention sink)" if sink and head == 0 else ""
        title = f"layer {layer} head {head}{note}"
        last = head == len(heads) - 1  # the heads share the prompt axis: its labels once, under the last
        _heatmap(ax, heads[head], prompt_tokens, answer_tokens, title, sink, False, x_labels=last)
    return save_figure(fig, path)


def plot_layers_overview(path: Path, attention: np.ndarray, sink: bool) -> Path:
    """Every layer's head-mean map, small, to find the layers worth a closer look."""
    plt = pyplot()
    layers = attention.shape[0]
    cols = min(layers, 6)
    rows = -(-layers // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[layers:]:
        ax.axis("off")
    for layer, ax in enumerate(axes.flat[:layers]):
        _heatmap(ax, attention[layer].mean(0), [], [], f"layer {layer}", sink, False, ticks=False)
    fig.suptitle("head-mean attention of the answer (rows) over the prompt (columns), per layer", fontsize=10)
    return save_figure(fig, path)


def plot_comparison(
    path: Path, panels: list[tuple[str, np.ndarray, bool]], prompt_tokens, answer_tokens, sink: bool
) -> Path:
    """Maps of the model and the base on the same answer, and their difference, one under the other."""
    plt = pyplot()
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=_size(len(prompt_tokens), len(answer_tokens), len(panels)),
        squeeze=False,
        layout="constrained",
    )
    for (title, matrix, signed), ax in zip(panels, axes[:, 0]):
        image = _heatmap(ax, matrix, prompt_tokens, answer_tokens, title, sink, signed)
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    return save_figure(fig, path)
