"""`finch data generate|import|list|show`: thin wrappers over finch.sdg, finch.importing and finch.train.rendered."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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

PROBLEMS_SHOWN = 100  # a file of broken rows would bury the terminal: the first ones tell what is wrong
SKIPPED_SHOWN = 20


@data_app.command("import")
def import_command(
    files: list[Path] = typer.Argument(..., help="JSON Lines, JSON or CSV files of chat rows.", show_default=False),
    format: str = typer.Option(
        "auto",
        "--format",
        help="auto (each row's format by its fields, CSV by the .csv suffix), alpaca, sharegpt, messages, "
        "prompt-completion or csv.",
    ),
    output: Path = typer.Option(
        None, "--output", help="Dataset folder; none: import-<first file's name> in the workspace's datasets."
    ),
    test_ratio: float = typer.Option(0.1, "--test-ratio", help="Share of the rows held out as test.jsonl; 0: none."),
    seed: int = typer.Option(42, "--seed", help="Seed of the test split."),
    taxonomy: Path = typer.Option(
        None,
        "--taxonomy",
        help="Taxonomy whose held-out seed questions no training row may contain; none: the workspace's, if any.",
    ),
    model: str = typer.Option(
        None, "--model", help="Student whose tokens the length histogram counts (report and lengths.png); none: skip."
    ),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Leave out the rows that cannot be read (listed in the report) instead of stopping.",
    ),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="Keep exact and near duplicates."),
    keep_pii: bool = typer.Option(
        False, "--keep-pii", help="Keep emails, phone numbers, IBANs, card numbers and IP addresses as they are."
    ),
    keep_contaminated: bool = typer.Option(
        False, "--keep-contaminated", help="Keep training rows that repeat a test row or a held-out question."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import chat data in the formats peers use as a dataset finch trains from: personal identifiers scrubbed,
    duplicates dropped, a test split held out, training rows that repeat a test row or a held-out seed question
    dropped. Rows that cannot be read stop the import, each listed, unless --skip-invalid."""
    from finch.importing import ImportOptions, ImportRejected, import_dataset

    settings = load_settings()
    workspace_taxonomy = settings.path("taxonomy_dir")
    options = ImportOptions(
        files=tuple(files),
        output=output or settings.path("datasets_dir") / f"import-{re.sub(r'[^A-Za-z0-9._-]+', '_', files[0].stem)}",
        format=format,
        test_ratio=test_ratio,
        seed=seed,
        skip_invalid=skip_invalid,
        dedup=not no_dedup,
        scrub_pii=not keep_pii,
        decontaminate=not keep_contaminated,
        taxonomy=taxonomy or (workspace_taxonomy if workspace_taxonomy.is_dir() else None),
        model=model,
    )
    try:
        report = import_dataset(options, settings.path("models_dir"))
    except ImportRejected as e:
        for problem in e.problems[:PROBLEMS_SHOWN]:
            err.print(escape(str(problem)))
        if len(e.problems) > PROBLEMS_SHOWN:
            err.print(f"... and {len(e.problems) - PROBLEMS_SHOWN} more")
        raise
    if json_output:
        print_json(report)
    else:
        print_import_summary(report)


def print_import_summary(report: dict) -> None:
    table = Table(title="imported data")
    for column in ("file", "format", "rows", "invalid"):
        table.add_column(column, justify="right" if column in ("rows", "invalid") else "left")
    for entry in report["files"]:
        file_format = f"{entry['format'] or '-'} ({entry['container']})"
        table.add_row(escape(entry["file"]), file_format, str(entry["rows"]), str(entry["invalid"]))
    out.print(table)
    skipped = report["skipped"]
    steps = {step: sum(entry["step"] == step for entry in skipped) for step in ("invalid", "duplicate", "contaminated")}
    out.print(
        f"{escape(report['output'])}: train {report['train']} rows, test {report['test']}; left out: "
        f"{steps['invalid']} invalid, {steps['duplicate']} duplicates, {steps['contaminated']} contaminated"
    )
    pii = report["pii"]
    if pii is None:
        out.print("personal identifiers: kept (--keep-pii)")
    else:
        found = ", ".join(f"{kind} {count}" for kind, count in pii.items() if kind != "rows" and count)
        out.print(
            f"personal identifiers replaced: {found or 'none found'}" + (f" in {pii['rows']} rows" if found else "")
        )
    contamination = report["contamination"]
    if contamination is None:
        out.print("contamination: not checked (--keep-contaminated)")
    else:
        against = (
            f"the test rows and {contamination['held_out_questions']} held-out questions of {contamination['taxonomy']}"
        )
        if contamination["taxonomy"] is None:
            against = "the test rows (no taxonomy: held-out seed questions not checked)"
        out.print(
            f"contamination ({contamination['ngram']}-grams) against {escape(against)}: {contamination['test']} "
            f"training rows repeat a test row, {contamination['held_out']} a held-out question"
        )
    lengths = report["lengths"]
    if lengths is not None:
        print_length_histogram(lengths)
    for entry in skipped[:SKIPPED_SHOWN]:
        out.print(f"[dim]{escape(entry['source'])}: {entry['step']}: {escape(entry['reason'])}[/]")
    if len(skipped) > SKIPPED_SHOWN:
        out.print(f"[dim]... and {len(skipped) - SKIPPED_SHOWN} more, all in report.json[/]")


def print_length_histogram(lengths: dict) -> None:
    widest = max(b["rows"] for b in lengths["bins"]) or 1
    table = Table(title=f"tokens per row ({escape(lengths['model'])})", box=None)
    table.add_column("tokens", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("")
    low = 0
    for b in lengths["bins"]:
        label = f"{low + 1}-{b['up_to']}" if b["up_to"] is not None else f"> {low}"
        table.add_row(label, str(b["rows"]), "█" * round(30 * b["rows"] / widest))
        low = b["up_to"] or low
    out.print(table)
    out.print(
        f"median {lengths['median']}, p95 {lengths['p95']}, max {lengths['max']} tokens; "
        f"{lengths['trained_tokens']} trained; {lengths['over_max_seq_len']} rows over max_seq_len "
        f"{lengths['max_seq_len']} (finch train skips them unless --max-seq-len is raised)"
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
        out.print("no datasets yet: `finch data generate` or `finch data import` makes one.")
        return
    table = Table()
    for column in ("name", "pipeline", "teacher", "train", "test", "leaves", "state", "modified"):
        table.add_column(column)
    for d in datasets:
        table.add_row(
            escape(d["name"]),
            d["pipeline"] or "",
            escape(str(d["teacher"] or "-")),  # an imported dataset has none
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
    rendered: bool = typer.Option(
        False,
        "--rendered",
        help="Print the rows as finch train sees them: through the student's chat template, trained tokens "
        "highlighted, masked ones dimmed.",
    ),
    model: str = typer.Option(None, "--model", help="The student for --rendered; none: the configured model."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stats of one dataset and a few of its samples."""
    from finch.sdg import load_dataset

    if model is not None and not rendered:
        raise UsageError("--model: the student to render with; it goes with --rendered.")
    settings = load_settings()
    folder = Path(dataset)
    if not folder.is_dir():
        folder = settings.path("datasets_dir") / dataset
    if not folder.is_dir():
        raise UsageError(f"no dataset '{dataset}': give a folder or a name from `finch data list`.")
    shown = load_dataset(folder, samples=samples, seed=int(time.time()) if samples else 0)
    pieces = []
    if rendered:
        from finch.train.rendered import rendered_pieces, student_chat_tokenizer

        tokenizer, render = student_chat_tokenizer(model or settings.config.model, settings.path("models_dir"))
        pieces = [rendered_pieces(tokenizer, render, row["messages"]) for row in shown["samples"]]
    if json_output:
        if rendered:
            shown["rendered"] = [[{"text": p.text, "trained": p.trained} for p in row] for row in pieces]
        print_json(shown)
        return
    report = shown["report"]
    if report.get("pipeline") == "import":
        out.print(f"[bold]{escape(str(folder))}[/]: imported")
        print_import_summary(report)
    else:
        out.print(
            f"[bold]{escape(str(folder))}[/]: {report['pipeline']} pipeline, teacher {escape(str(report['teacher']))}"
        )
        print_summary(report)
    for i, row in enumerate(shown["samples"]):
        meta = row["metadata"]
        out.rule(f"{escape(meta['leaf'])} ({meta['kind']})")
        if rendered:
            print_rendered(pieces[i])
            continue
        for message in row["messages"]:
            out.print(f"[bold]{message['role']}:[/] ", end="")
            out.print(message["content"], markup=False)


def print_rendered(pieces) -> None:
    """The rendered conversation: trained tokens highlighted, masked ones dimmed."""
    text = Text()
    for piece in pieces:
        text.append(piece.text, style="bold black on green" if piece.trained else "dim")
    out.print(text)
    trained = sum(piece.trained for piece in pieces)
    out.print(f"[dim]{len(pieces)} tokens, {trained} trained (highlighted), {len(pieces) - trained} masked (dimmed)[/]")
