"""`finch data generate|list|show`: thin wrappers over finch.sdg."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from finch.cli.common import print_json
from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import err, out
from finch.config import load_settings
from finch.errors import SettingError, UsageError
from finch.sdg.config import GenerateConfig

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


def generate(
    config_file: Path = typer.Option(None, "--config", help="A YAML file with any of these settings; flags win."),
    **settings,
) -> None:
    """Generate training data from the taxonomy with a teacher model, leaf by leaf; resumable. Every setting is a
    flag and a key of the --config file."""
    from finch.sdg.config import GenerateConfig, load_generate_config
    from finch.sdg.run import run_generate
    from finch.taxonomy.select import InvalidLeaves

    overrides = config_values(GenerateConfig, settings)
    progress = RichProgress()
    try:
        config = load_generate_config(config_file, overrides)
        report = run_generate(config, load_settings(), progress)
    except SettingError as e:
        raise as_flags(e, set(overrides)) from None
    except InvalidLeaves as e:
        for line in e.report.lines():
            err.print(escape(line))
        raise
    finally:
        progress.progress.stop()
    print_summary(report)


data_app.command("generate")(with_config_options(generate, GenerateConfig))


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
