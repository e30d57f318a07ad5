"""`finch evaluate` and `finch evaluate compare`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import out
from finch.config import load_settings
from finch.evaluate.config import EvalConfig


def _help(field: str) -> str:
    return EvalConfig.model_fields[field].description or ""


evaluate_app = typer.Typer(
    help="Score models on held-out data and benchmarks: report.json, report.md and PNG plots.",
    invoke_without_command=True,
)


def evaluate(
    ctx: typer.Context,
    config_file: Path = typer.Option(None, "--config", help="A YAML file with any of these settings; flags win."),
    **settings,
) -> None:
    """Score a model (and its base) on a benchmark: report.json, report.md and PNG plots. `finch evaluate compare`
    puts several models or checkpoints side by side. Every setting is a flag and a key of the --config file."""
    if ctx.invoked_subcommand is not None:
        return
    from finch.errors import SettingError
    from finch.evaluate.run import evaluate_config
    from finch.stage_config import load_stage_config

    overrides = config_values(EvalConfig, settings)
    try:
        config = load_stage_config(EvalConfig, config_file, overrides, "evaluate")
        results, output = evaluate_config(config, load_settings())
    except SettingError as e:
        raise as_flags(e, set(overrides), {"imports": "--import"}) from None
    print_results(f"{config.benchmark} ({output})", results)
    if config.benchmark == "human" and not config.imports:
        out.print(
            f"Grade {output / 'grading_sheet.csv'} (0-5 a row), then: finch evaluate --benchmark human "
            f"--import GRADED.csv --output {output}",
            markup=False,
        )


evaluate_app.callback()(with_config_options(evaluate, EvalConfig, {"model": ["-m"], "imports": ["--import"]}))


@evaluate_app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Models, checkpoints (RUN/checkpoints/step-N) or report folders."),
    benchmark: str = typer.Option("metrics", help=_help("benchmark")),
    data: Path = typer.Option(None, help=_help("data")),
    judge: str = typer.Option(None, help=_help("judge")),
    limit: int = typer.Option(None, help=_help("limit")),
    max_tokens: int = typer.Option(None, help=_help("max_tokens")),
    judge_max_tokens: int = typer.Option(None, help=_help("judge_max_tokens")),
    output: Path = typer.Option(None, help="Report folder (default: the workspace's evals/compare-BENCHMARK-TIME)."),
) -> None:
    """Several models or checkpoints on one benchmark: Markdown, JSON, and plots (mean with 95% CIs, per prompt,
    score against training steps)."""
    from finch.evaluate.compare import compare as run_compare

    settings = load_settings()
    judge = judge or settings.config.teacher
    output = output or settings.path("evals_dir") / f"compare-{benchmark}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_compare(
        runs,
        benchmark,
        output,
        settings.path("models_dir"),
        data=data,
        limit=limit,
        max_tokens=max_tokens,
        judge=judge,
        judge_max_tokens=judge_max_tokens,
    )
    print_results(f"compare {benchmark} ({output})", result["results"], result["steps"])


def print_results(title: str, results: dict, steps: dict | None = None) -> None:
    metrics = sorted({m for scores in results.values() for m in scores})
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    if steps:
        table.add_column("steps", justify="right")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for label, scores in results.items():
        cells = [
            f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
            for v in (scores.get(m) for m in metrics)
        ]
        table.add_row(label, *([str(steps.get(label) or "-")] if steps else []), *cells)
    out.print(table)


def print_verdicts(verdicts, metric: str) -> None:
    """Per-leaf base vs tuned (finch.evaluate.branch.LeafVerdict rows), e.g. for the quickstart's evaluation stage."""

    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    table = Table(title=f"base vs tuned, per leaf ({metric})", title_justify="left")
    for column in ("leaf", "questions", "base", "tuned", "delta", "verdict"):
        table.add_column(column, justify="left" if column in ("leaf", "verdict") else "right")
    for v in verdicts:
        table.add_row(v.leaf, str(v.questions), fmt(v.base), fmt(v.tuned), fmt(v.delta), v.verdict)
    out.print(table)
