"""The token heatmaps label every prompt token the figure has room for, and say when they label fewer."""

from __future__ import annotations

import numpy as np

from finch.explain.plots import MAX_X_LABELS, _heatmap
from finch.plotting import pyplot


def x_labels(n_prompt: int):
    fig, ax = pyplot().subplots()
    tokens = [f"t{i}" for i in range(n_prompt)]
    _heatmap(ax, np.random.default_rng(0).random((2, n_prompt)), tokens, ["a", "b"], "map", sink=False, signed=False)
    labels, axis_label = [t.get_text() for t in ax.get_xticklabels()], ax.get_xlabel()
    pyplot().close(fig)
    return labels, axis_label


def test_a_short_prompt_has_every_token_labelled():
    labels, axis_label = x_labels(40)
    assert labels == [f"t{i}" for i in range(40)] and axis_label == ""


def test_a_long_prompt_has_one_token_in_k_labelled_and_says_so():
    labels, axis_label = x_labels(1000)  # a knowledge leaf's prompt: passages and the question
    assert labels == [f"t{i}" for i in range(0, 1000, 3)] and len(labels) <= MAX_X_LABELS
    assert "one in 3 labelled" in axis_label and "explain.html" in axis_label
