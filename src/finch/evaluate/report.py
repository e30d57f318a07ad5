"""report.json, report.md and PNG plots for one benchmark, several models."""

from __future__ import annotations

import math
from pathlib import Path

from finch.fileio import atomic_write_json, atomic_write_text
from finch.plotting import pyplot, save_figure


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def write_report(
    output: Path,
    benchmark: str,
    results: dict[str, dict[str, float]],
    notes: list[str],
    per_sample: dict[str, dict[str, list[float]]] | None = None,
    extra: dict | None = None,
    markdown: list[str] | None = None,
) -> list[Path]:
    """`markdown`: more lines for report.md after the table (e.g. a per-leaf table)."""
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        output / "report.json",
        {"benchmark": benchmark, "results": results, "notes": notes, "per_sample": per_sample, **(extra or {})},
    )
    metrics = sorted({metric for scores in results.values() for metric in scores})
    lines = [
        f"# finch evaluation: {benchmark}",
        "",
        "| model | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for label, scores in results.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(scores.get(m)) for m in metrics) + " |")
    lines += [*(markdown or []), "", *[f"- {note}" for note in notes]]
    atomic_write_text(output / "report.md", "\n".join(lines) + "\n")
    plot = _plot(output / f"{benchmark}.png", benchmark, results, per_sample)
    return [output / "report.json", output / "report.md", *([plot] if plot else [])]


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plot(path: Path, benchmark: str, results: dict[str, dict[str, float]], per_sample) -> Path | None:
    """Bars of every scored metric; None when nothing is scored yet (a human-grading sheet before its grades)."""
    plt = pyplot()
    metrics = sorted({m for scores in results.values() for m in scores if isinstance(scores[m], float)})
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    labels = list(results)
    for ax, metric in zip(axes[0], metrics):
        means, errors = [], []
        for label in labels:
            samples = (per_sample or {}).get(label, {}).get(metric)
            value = results[label].get(metric)
            mean, half = mean_ci(samples) if samples else (float("nan") if value is None else value, 0.0)
            means.append(mean)
            errors.append(half)
        ax.bar(labels, means, yerr=errors, capsize=4, color=["#9aa5b1", "#2f7d32", "#1565c0", "#ef6c00"][: len(labels)])
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(f"finch evaluate: {benchmark}" + (" (bars: mean ± 95% CI)" if per_sample else ""))
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_per_prompt(
    path: Path, title: str, per_prompt: dict[str, dict[str, float]], metric: str, group: str = "prompt"
) -> Path:
    """Grouped bars: one group per prompt (or leaf), one bar per model."""
    plt = pyplot()
    prompts = sorted({p for scores in per_prompt.values() for p in scores}, key=lambda p: (len(p), p))
    labels = list(per_prompt)
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(prompts) * max(1, len(labels)) / 2 + 2), 3.4))
    for i, label in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(prompts))]
        ax.bar(xs, [per_prompt[label].get(p, float("nan")) for p in prompts], width, label=label)
    names = [p.rsplit("->", 1)[-1] for p in prompts]  # a leaf by its last part: the full names do not fit
    ax.set_xticks(range(len(prompts)), names, rotation=0 if group == "prompt" else 20)
    ax.set_xlabel(group)
    ax.set_ylabel(metric)
    ax.legend(fontsize="small")
    ax.set_title(f"finch evaluate: {title}, per {group}")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
