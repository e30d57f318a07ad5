"""The `finch` command: the whole tree, so users see the shape of the pipeline from day one."""

from __future__ import annotations

import sys
import warnings

import typer

from finch.cli.chat import chat
from finch.cli.data import data_app
from finch.cli.evaluate import evaluate_app
from finch.cli.explain import explain
from finch.cli.export import export
from finch.cli.model import model_app
from finch.cli.plan import plan_app
from finch.cli.quickstart import quickstart
from finch.cli.serve import serve
from finch.cli.study import study_app
from finch.cli.system import system_app
from finch.cli.taxonomy import taxonomy_app
from finch.cli.train import train
from finch.cli.ui import stage_progress
from finch.cli.workspace import config_app, init
from finch.errors import FinchError, RenamedSetting
from finch.progress import show_stages_with

app = typer.Typer(
    name="finch",
    help="Fine-tune LLMs on consumer hardware, from a taxonomy of what you want the model to know.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init)
app.add_typer(config_app, name="config")
app.add_typer(system_app, name="system")
app.add_typer(model_app, name="model")

app.add_typer(taxonomy_app, name="taxonomy")

app.add_typer(data_app, name="data")

app.add_typer(plan_app, name="plan")

app.command("train")(train)
app.add_typer(evaluate_app, name="evaluate")
app.command("explain")(explain)
app.command("export")(export)
app.command("serve")(serve)
app.command("chat")(chat)
app.add_typer(study_app, name="study")
app.command("quickstart")(quickstart)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and an exit code, never a traceback."""
    # PEFT calls a transformers method deprecated in v5; the warning is about library internals, not the user's run.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    show_stages_with(stage_progress)
    show_plain_warning = warnings.showwarning

    def show_warning(message, category, *args, **kwargs):
        if issubclass(category, RenamedSetting):
            print(f"finch: warning: {message}", file=sys.stderr)
        else:
            show_plain_warning(message, category, *args, **kwargs)

    warnings.showwarning = show_warning
    try:
        app(args=argv, prog_name="finch")
    except FinchError as e:
        print(f"finch: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("finch: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
