"""`finch evaluate compare`: several models or checkpoints on one benchmark, side by side. Each argument is a model
reference (evaluated here, all in one run) or a folder holding an earlier report.json of the same benchmark. Plots:
the mean with 95% confidence intervals, per-prompt bars, and the score against training steps where they are known
(quality need not rise with training length: the paper behind finch found a 250-step model below a 100-step one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from finch.errors import UsageError
from finch.plotting import pyplot, save_figure

PRIMARY = {
    "metrics": "rouge_l",
    "perplexity": "perplexity",
    "mt_bench": "overall",
    "mt_bench_branch": "score",
    "mmlu": "accuracy_best",
    "mmlu_branch": "accuracy_best",
    "key_facts": "all_key_facts",
    "human": "mean_grade",
}


def training_step(ref: str) -> int | None:
    """The optimiser steps behind a checkpoint (step-0000100) or a finished run directory (its last logged step)."""
    path = Path(ref)
    match = re.fullmatch(r"step-(\d+)", path.name)
    if match:
        return int(match.group(1))
    log = path / "train_log.jsonl"
    if log.is_file():
        steps = [json.loads(line).get("step") for line in log.read_text().splitlines() if line.strip()]
        steps = [s for s in steps if isinstance(s, int)]
        return max(steps) if steps else None
    return None


def label_for(ref: str, taken: set[str]) -> str:
    path = Path(ref)
    label = f"{path.parent.parent.name}/{path.name}" if path.name.startswith("step-") else path.name or ref
    base, n = label, 2
    while label in taken:
        label, n = f"{base} ({n})", n + 1
    return label


def compare(items: list[str], benchmark: str, output: Path, models_dir: Path, **options) -> dict:
    """`options` go to evaluate() (data, limit, max_tokens, judge, judge_max_tokens) for the model references."""
    from finch.evaluate.report import mean_ci, plot_per_prompt, write_report
    from finch.evaluate.run import evaluate

    if len(items) < 2:
        raise UsageError("finch evaluate compare needs at least two models, checkpoints or report folders.")
    if benchmark not in PRIMARY:
        raise UsageError(f"--benchmark {benchmark}: choose one of {', '.join(PRIMARY)}.")
    metric = PRIMARY[benchmark]
    results, per_sample, per_prompt, steps, sources = {}, {}, {}, {}, {}
    models = {}
    for item in items:
        report_file = Path(item) / "report.json"
        if report_file.is_file():
            report = json.loads(report_file.read_text())
            if report.get("benchmark") != benchmark:
                raise UsageError(f"{report_file}: a {report.get('benchmark')} report, not {benchmark}.")
            for label, scores in report["results"].items():
                key = label_for(f"{Path(item).name}:{label}", set(results))
                results[key] = scores
                per_sample[key] = (report.get("per_sample") or {}).get(label, {})
                per_prompt[key] = (report.get("per_prompt") or {}).get(label)
                sources[key] = str(report_file)
                steps[key] = report.get("steps", {}).get(label)
        else:
            label = label_for(item, set(models) | set(results))
            models[label] = item
            steps[label] = training_step(item)
            sources[label] = item
    if models:
        evaluate(models, benchmark, options.pop("data", None), output / "runs", models_dir, **options)
        report = json.loads((output / "runs" / "report.json").read_text())
        for label in models:
            results[label] = report["results"][label]
            per_sample[label] = (report.get("per_sample") or {}).get(label, {})
            per_prompt[label] = (report.get("per_prompt") or {}).get(label)
    if not any(per_prompt.values()):
        aligned = [per_sample[label].get(metric) for label in results]
        if all(aligned) and len({len(v) for v in aligned}) == 1:  # one value per prompt, same prompts for all
            per_prompt = {
                label: {str(i + 1): v for i, v in enumerate(values)} for label, values in zip(results, aligned)
            }
    notes = [
        f"{label}: {sources[label]}" + (f" (step {steps[label]})" if steps[label] is not None else "")
        for label in results
    ]
    stepped = sorted((steps[label], label) for label in results if steps[label] is not None)
    extra = {"metric": metric, "steps": steps, "sources": sources, "per_prompt": per_prompt}
    written = write_report(output, f"compare-{benchmark}", results, notes, per_sample, extra)
    if any(per_prompt.values()):
        written.append(
            plot_per_prompt(
                output / f"{benchmark}-per-prompt.png", benchmark, {k: v for k, v in per_prompt.items() if v}, metric
            )
        )
    if len(stepped) >= 2:
        points = []
        for step, label in stepped:
            values = per_sample[label].get(metric)
            points.append((step, *(mean_ci(values) if values else (results[label].get(metric), 0.0))))
        written.append(_plot_steps(output / f"{benchmark}-vs-steps.png", benchmark, metric, points))
    return {"results": results, "steps": steps, "files": [str(p) for p in written]}


def _plot_steps(path: Path, benchmark: str, metric: str, points: list[tuple[int, float, float]]) -> Path:
    fig, ax = pyplot().subplots(figsize=(5, 3.4))
    xs, means, errors = zip(*points)
    ax.errorbar(xs, [float("nan") if m is None else m for m in means], yerr=errors, marker="o", capsize=4)
    ax.set_xlabel("training steps")
    ax.set_ylabel(metric)
    ax.set_title(f"finch evaluate compare: {benchmark} (mean ± 95% CI)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
