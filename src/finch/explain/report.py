"""What `finch explain` writes: explanation.json (tokens, answers, grounding, memory), maps.npz (every map as
numbers), the PNG heatmaps and explain.html."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finch.explain.page import render_page
from finch.explain.plots import plot_comparison, plot_layer, plot_layers_overview, plot_map
from finch.explain.run import Explanation
from finch.fileio import atomic_write_json, atomic_write_text


def attribution_share(attribution: np.ndarray) -> np.ndarray:
    """Each answer token's |gradient × input| as shares of its row: comparable between models."""
    magnitude = np.abs(attribution)
    return magnitude / np.maximum(magnitude.sum(-1, keepdims=True), 1e-30)


def summary(explanation: Explanation) -> dict:
    e = explanation
    return {
        "model": e.model,
        "compare": e.compare,
        "messages": e.messages,
        "answer": e.answer,
        "prompt_tokens": e.prompt_tokens,
        "answer_tokens": e.answer_tokens,
        "own_answers": e.own_answers,
        "gguf_agreement": e.gguf_agreement,
        "answer_logprob": {label: float(t.answer_logprobs.sum()) for label, t in e.traces.items()},
        "grounding": {label: g.to_dict() for label, g in e.grounding.items()},
        "layers": int(e.traces["model"].attention.shape[0]),
        "heads": int(e.traces["model"].attention.shape[1]),
        "seconds": round(e.seconds, 2),
        "peak_rss_mb": round(e.peak_rss_mb, 1),
    }


def _rows(matrix: np.ndarray) -> list[list[float]]:
    """Four significant digits: the page's colours need no more, and the page stays a few hundred kB."""
    return [[float(f"{v:.4g}") for v in row] for row in matrix]


def _maps(e: Explanation) -> dict[str, dict]:
    names = {"model": e.model, "base": e.compare}
    maps = {}
    for label, trace in e.traces.items():
        maps[f"attribution ({names[label]})"] = {"rows": _rows(trace.attribution), "signed": True}
        maps[f"rollout ({names[label]})"] = {"rows": _rows(trace.rollout), "signed": False}
    if "base" in e.traces:
        tuned, base = e.traces["model"], e.traces["base"]
        change = attribution_share(tuned.attribution) - attribution_share(base.attribution)
        maps["attribution share: model − base"] = {"rows": _rows(change), "signed": True}
        maps["rollout: model − base"] = {"rows": _rows(tuned.rollout - base.rollout), "signed": True}
    return maps


def write_explanation(e: Explanation, folder: Path, layer_plots: bool = True) -> list[Path]:
    """Every output into `folder`; returns the files written, the page first."""
    folder.mkdir(parents=True, exist_ok=True)
    prompt, answer, sink = e.prompt_tokens, e.answer_tokens, e.sink
    model = e.traces["model"]
    written = [folder / "explanation.json", folder / "maps.npz"]
    atomic_write_json(written[0], summary(e))
    arrays = {
        f"{label}_{kind}": getattr(t, kind)
        for label, t in e.traces.items()
        for kind in ("attention", "rollout", "attribution", "answer_logprobs")
    }
    tmp = folder / ".maps.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(written[1])
    images = [
        plot_map(
            folder / "attribution.png",
            model.attribution,
            prompt,
            answer,
            f"gradient × input of each answer token (rows) to the prompt: {e.model}",
            False,
            True,
            per_row=True,
        ),
        plot_map(
            folder / "rollout.png",
            model.rollout,
            prompt,
            answer,
            f"attention rollout through all layers: {e.model}",
            sink,
            False,
        ),
        plot_layers_overview(folder / "attention-layers.png", model.attention, sink),
    ]
    if "base" in e.traces:
        base = e.traces["base"]
        images.append(
            plot_comparison(
                folder / "compare.png",
                [
                    (f"attribution share: {e.model}", attribution_share(model.attribution), False),
                    (f"attribution share: {e.compare} (same answer)", attribution_share(base.attribution), False),
                    (
                        "attribution share: model − base (red: the tuned model leans on it more)",
                        attribution_share(model.attribution) - attribution_share(base.attribution),
                        True,
                    ),
                    ("rollout: model − base", model.rollout - base.rollout, True),
                ],
                prompt,
                answer,
                sink,
            )
        )
    layers = []
    if layer_plots:
        (folder / "attention").mkdir(exist_ok=True)
        layers = [
            plot_layer(folder / "attention" / f"layer-{i:02d}.png", i, heads, prompt, answer, sink)
            for i, heads in enumerate(model.attention)
        ]
    key_rows = sorted({row for g in e.grounding.values() for row in g.key_rows})
    page = folder / "explain.html"
    atomic_write_text(page, render_page(summary(e), _maps(e), key_rows, sink, images))
    return [page, *written, *images, *layers]
