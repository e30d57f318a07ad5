"""`finch data generate|list|show`: thin wrappers over finch.sdg."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from finch.cli.common import print_json
from finch.cli.ui import err, out
from finch.config import load_settings
from finch.errors import FinchError, UsageError

data_app = typer.Typer(help="Generate, list and inspect synthetic training data.", no_args_is_help=True)


class RichProgress:
    """One bar per leaf and stage, with ETA and kept/rejected counts (finch.sdg.generate.Progress)."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("kept {task.fields[kept]} rejected {task.fields[rejected]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task = None

    def start(self, leaf: str, stage: str, total: int, done: int) -> None:
        self.progress.start()  # once: later calls do nothing; the caller stops it when the run ends
        self.task = self.progress.add_task(f"{leaf}: {stage}", total=total, completed=done, kept=0, rejected=0)

    def advance(self, kept: int, rejected: int) -> None:
        fields = self.progress.tasks[-1].fields
        self.progress.update(self.task, advance=1, kept=fields["kept"] + kept, rejected=fields["rejected"] + rejected)

    def grow(self, calls: int) -> None:
        self.progress.update(self.task, total=self.progress.tasks[-1].total + calls)

    def finish(self) -> None:
        if self.task is not None:  # the stage ended, done or not: its clock and ETA stop where they are
            self.progress.stop_task(self.task)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", re.sub(r"^https?://", "", text)).strip("_")


def select_leaves(taxonomy: Path, leaves: list[str] | None, documents_cache: Path):
    from finch.taxonomy import check_taxonomy, diff_leaves

    if not taxonomy.exists():
        raise FinchError(f"the taxonomy {taxonomy} does not exist; `finch init` creates one with a sample.")
    choice = leaves or ["all"]
    if choice == ["all"]:
        paths = [taxonomy]
    elif choice == ["changed"]:
        paths = [leaf.path for leaf in diff_leaves(taxonomy).leaves]
        if not paths:
            raise UsageError(
                f"--leaves changed: no leaf under {taxonomy} changed; use --leaves all to generate anyway."
            )
    else:
        if "all" in choice or "changed" in choice:
            raise UsageError("--leaves: give `all`, `changed`, or paths, not a mix.")
        paths = [Path(p) for p in choice]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise UsageError(f"--leaves: no such file or folder: {', '.join(missing)}.")
    report = check_taxonomy(paths, documents_cache=documents_cache)
    if not report.ok:
        for line in report.lines():
            err.print(escape(line))
        raise FinchError("the selected leaves have errors; fix them (finch taxonomy check) and run again.")
    return report.leaves


def student_token_counter(model_ref: str, models_dir: Path):
    """Token counts in the student's tokenizer, so chunks fit what the student will be trained on."""
    from transformers import AutoTokenizer

    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(prepare_model(resolve_model(model_ref, models_dir)))
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


@data_app.command("generate")
def generate(
    taxonomy: Path = typer.Option(None, "--taxonomy", help="Taxonomy folder (default: the workspace taxonomy)."),
    leaves: list[str] = typer.Option(None, "--leaves", help="`all` (default), `changed` (git diff), or paths."),
    pipeline: str = typer.Option(
        "full", "--pipeline", help="full (generate, judge, deduplicate), simple (one step, no judge) or a YAML file."
    ),
    teacher: str = typer.Option(None, "--teacher", help="Teacher model or OpenAI-compatible URL (default: config)."),
    teacher_model: str = typer.Option(None, "--teacher-model", help="Model name to ask a URL teacher for."),
    scale: int = typer.Option(
        5, "--scale", min=1, help="Samples per seed example (knowledge: at least; every passage is asked about)."
    ),
    workers: int = typer.Option(8, "--workers", min=1, help="Concurrent requests to a URL teacher."),
    output: Path = typer.Option(None, "--output", help="Dataset folder; rerunning into it resumes."),
    seed: int = typer.Option(42, "--seed"),
    replay: Path = typer.Option(None, "--replay", help="Messages-format JSONL to mix in against forgetting."),
    replay_ratio: float = typer.Option(0.0, "--replay-ratio", min=0.0, help="Replay rows per generated row."),
    student: str = typer.Option(None, "--student", help="Model whose tokenizer sizes chunks (default: config)."),
    chunk_tokens: int = typer.Option(400, "--chunk-tokens", min=32, help="Knowledge chunk size in student tokens."),
    ctx: int = typer.Option(4096, "--ctx", min=512, help="Context length for a local teacher."),
    limit_per_leaf: int = typer.Option(
        None, "--limit-per-leaf", min=1, help="At most this many samples (and benchmark questions) per leaf."
    ),
) -> None:
    """Generate training data from the taxonomy with a teacher model, leaf by leaf; resumable."""
    report = run_generate(
        taxonomy,
        leaves,
        pipeline,
        teacher,
        teacher_model,
        scale,
        workers,
        output,
        seed,
        replay,
        replay_ratio,
        student,
        chunk_tokens,
        ctx,
        limit_per_leaf,
    )
    print_summary(report)


def run_generate(
    taxonomy,
    leaves,
    pipeline,
    teacher,
    teacher_model,
    scale,
    workers,
    output,
    seed,
    replay,
    replay_ratio,
    student,
    chunk_tokens,
    ctx,
    limit_per_leaf=None,
) -> dict:
    from finch.inference import load_backend
    from finch.sdg import GenerateOptions, generate_dataset, load_pipeline

    if replay_ratio > 0 and replay is None:
        raise UsageError("--replay-ratio needs --replay FILE (messages-format JSONL).")
    if replay is not None and not replay.is_file():
        raise UsageError(f"--replay {replay}: no such file.")
    settings = load_settings()
    models_dir = settings.path("models_dir")
    chosen = load_pipeline(pipeline)
    selected = select_leaves(
        taxonomy or settings.path("taxonomy_dir"), leaves, settings.locations.cache_dir / "documents"
    )
    teacher = teacher or settings.config.teacher
    output = output or settings.path("datasets_dir") / f"{chosen.name}-{_slug(teacher)}-x{scale}-s{seed}"
    count_tokens = student_token_counter(student or settings.config.model, models_dir)
    options = GenerateOptions(
        output=output,
        scale=scale,
        seed=seed,
        workers=workers,
        chunk_tokens=chunk_tokens,
        replay=replay,
        replay_ratio=replay_ratio,
        limit_per_leaf=limit_per_leaf,
    )
    progress = RichProgress()
    try:
        with load_backend(teacher, models_dir, ctx=ctx, model_name=teacher_model) as backend:
            return generate_dataset(selected, backend, chosen, options, count_tokens, progress)
    finally:
        progress.progress.stop()


def print_summary(report: dict) -> None:
    table = Table(title="generated data", show_lines=False)
    for column in ("leaf", "stage", "generated", "kept", "rejected", "seconds"):
        table.add_column(column, justify="right" if column in ("generated", "kept", "seconds") else "left")
    for leaf in report["leaves"]:
        for i, stage in enumerate(leaf["stages"] or [{"stage": leaf["status"]}]):
            rejected = ", ".join(f"{k} {v}" for k, v in sorted(stage.get("rejected", {}).items()))
            if stage.get("abstained"):
                rejected += f"{', ' if rejected else ''}(judge abstained on {stage['abstained']} kept)"
            if stage.get("seed_copies"):
                rejected += f"{', ' if rejected else ''}({stage['seed_copies']} kept repeat a seed example)"
            table.add_row(
                escape(leaf["leaf"]) if i == 0 else "",
                stage["stage"],
                str(stage.get("generated", "")),
                str(stage.get("kept", "")),
                rejected,
                str(stage.get("seconds", "")),
            )
    out.print(table)
    out.print(
        f"{report['output']}: train {report['train']} rows, test {report['test']}, "
        f"knowledge MCQ {report['knowledge_mcq']}, replay {report['replay']}; {report['seconds']} s"
    )
    empty = [leaf["leaf"] for leaf in report["leaves"] if leaf["status"] == "complete" and leaf["train"] == 0]
    if empty:
        out.print(
            f"[yellow]no sample passed for {', '.join(empty)}[/]: see the rejections above (the teacher's rejected "
            "answers are in the .work journals); a stronger teacher (--teacher URL) or a larger --scale helps."
        )
    abstained = sum(s.get("abstained", 0) for leaf in report["leaves"] for s in leaf["stages"])
    if abstained:
        out.print(
            f"[yellow]{abstained} samples kept unrated[/]: the teacher's judge rated spoiled seed examples as high "
            "as the real ones, so its ratings could not filter; a stronger teacher (--teacher URL) judges them."
        )


@data_app.command("list")
def list_command(
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Generated datasets in the workspace, newest first."""
    from finch.sdg import list_datasets

    datasets = list_datasets(load_settings().path("datasets_dir"))
    if json_output:
        print_json(datasets)
        return
    if not datasets:
        out.print("no datasets yet: `finch data generate` makes one.")
        return
    table = Table()
    for column in ("name", "pipeline", "teacher", "train", "test", "leaves", "state", "modified"):
        table.add_column(column)
    for d in datasets:
        table.add_row(
            escape(d["name"]),
            d["pipeline"] or "",
            escape(str(d["teacher"])),
            str(d["train"]),
            str(d["test"]),
            str(d["leaves"]),
            "complete" if d["complete"] else "partial",
            datetime.fromtimestamp(d["modified"]).strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@data_app.command("show")
def show(
    dataset: str = typer.Argument(..., help="Dataset folder, or a name from `finch data list`."),
    samples: int = typer.Option(3, "--samples", min=0, help="Training rows to print."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stats of one dataset and a few of its samples."""
    from finch.sdg import load_dataset

    folder = Path(dataset)
    if not folder.is_dir():
        folder = load_settings().path("datasets_dir") / dataset
    if not folder.is_dir():
        raise UsageError(f"no dataset '{dataset}': give a folder or a name from `finch data list`.")
    shown = load_dataset(folder, samples=samples, seed=int(time.time()) if samples else 0)
    if json_output:
        print_json(shown)
        return
    report = shown["report"]
    out.print(
        f"[bold]{escape(str(folder))}[/]: {report['pipeline']} pipeline, teacher {escape(str(report['teacher']))}"
    )
    print_summary(report)
    for row in shown["samples"]:
        meta = row["metadata"]
        out.rule(f"{escape(meta['leaf'])} ({meta['kind']})")
        for message in row["messages"]:
            out.print(f"[bold]{message['role']}:[/] ", end="")
            out.print(message["content"], markup=False)
