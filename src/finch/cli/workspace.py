"""`finch init` and `finch config show|path`."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from finch.cli.common import print_json
from finch.cli.ui import out
from finch.config import Config, init_workspace, load_settings

config_app = typer.Typer(help="Show the effective configuration and where it lives.", no_args_is_help=True)


def init(
    non_interactive: bool = typer.Option(False, "--non-interactive", "-y", help="Take every default; ask nothing."),
    model: str = typer.Option(None, help="Default model to fine-tune (a model reference)."),
    teacher: str = typer.Option(None, help="Default teacher for data generation (a model reference or URL)."),
    force: bool = typer.Option(False, help="Overwrite an existing config.yaml."),
) -> None:
    """Write the config file and create the workspace folders."""
    settings = load_settings()
    config = Config.model_validate(settings.config.model_dump(include={"model", "teacher"}))
    if not non_interactive and sys.stdin.isatty():
        model = model or typer.prompt("Model to fine-tune", default=config.model)
        teacher = teacher or typer.prompt("Teacher model for data generation", default=config.teacher)
    config.model = model or config.model
    config.teacher = teacher or config.teacher
    created = init_workspace(settings, config, force=force)
    cfg_file = settings.locations.config_file
    if cfg_file not in created:
        out.print(f"kept existing {cfg_file} (use --force to overwrite)")
    for path in created:
        out.print(f"created {path}")
    out.print(f"workspace ready under {settings.locations.data_dir}. Next: finch quickstart")


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective configuration and where each value came from (file / env / default)."""
    settings = load_settings()
    values = settings.config.model_dump(mode="json")
    if as_json:
        print_json({k: {"value": v, "source": settings.sources[k]} for k, v in values.items()})
        return
    table = Table(title=f"finch configuration ({settings.locations.config_file})", title_justify="left")
    for column in ("key", "value", "source"):
        table.add_column(column)
    for key, value in values.items():
        table.add_row(key, str(value), settings.sources[key])
    out.print(table)


@config_app.command("path")
def config_path() -> None:
    """Print the path of the config file."""
    out.print(str(load_settings().locations.config_file))
