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
    benchmark: str = typer.Option("metrics", help="metrics or perplexity (mt_bench, mmlu, human: not yet)."),
    data: Path = typer.Option(None, help="Held-out data: a dataset folder (its test.jsonl) or a JSONL/text file."),
    limit: int = typer.Option(None, help="Use at most this many samples."),
    max_tokens: int = typer.Option(128, help="Longest answer, in tokens (metrics)."),
    output: Path = typer.Option(None, help="Report folder (default: the workspace's evals/BENCHMARK-TIME)."),
) -> None:
    """Score a model (and its base) on held-out data: report.json, report.md and a PNG plot."""
    from finch.evaluate.run import evaluate as run_evaluation

    settings = load_settings()
    model = model or settings.config.model
    models = {"base": base, "tuned": model} if base else {Path(model).name or model: model}
    output = output or settings.path("evals_dir") / f"{benchmark}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_evaluation(models, benchmark, data, output, settings.path("models_dir"), limit, max_tokens)
    metrics = sorted({m for scores in results.values() for m in scores})
    table = Table(title=f"{benchmark} ({output})", title_justify="left")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for label, scores in results.items():
        table.add_row(label, *(f"{scores[m]:.4g}" if m in scores else "-" for m in metrics))
    out.print(table)
