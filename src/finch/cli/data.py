"""`finch data generate|list|show`: thin wrappers over finch.sdg."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from finch.cli.common import print_json
from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import err, out
from finch.cli.views import RichProgress, print_summary
from finch.config import load_settings
from finch.errors import SettingError, UsageError
from finch.sdg.config import GenerateConfig

data_app = typer.Typer(help="Generate, list and inspect synthetic training data.", no_args_is_help=True)


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
