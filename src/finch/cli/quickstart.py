"""`finch quickstart`: the whole job on the built-in model, one stage per capability that has landed."""

from __future__ import annotations

import typer

from finch.config import Config, init_workspace, load_settings
from finch.models.info import model_info
from finch.models.prepare import prepare_model
from finch.models.resolve import resolve_model
from finch.ui import out


def quickstart(
    model: str = typer.Option(None, help="Model to use (default: the configured model, gemma-3-270m)."),
) -> None:
    """Set up the workspace, prepare the built-in model, and walk through the pipeline."""
    settings = load_settings()
    out.rule("[bold]1. workspace")
    config = Config.model_validate(settings.config.model_dump(include={"model", "teacher"}))
    for path in init_workspace(settings, config):
        out.print(f"created {path}")
    out.print(f"workspace: {settings.locations.data_dir}  config: {settings.locations.config_file}")

    out.rule("[bold]2. model")
    resolved = resolve_model(model or settings.config.model, settings.path("models_dir"))
    info = model_info(resolved, prepare_model(resolved))
    out.print(
        f"{info.name}: {info.architecture}, {info.parameters / 1e6:.0f}M parameters, context {info.context_length}, "
        f"chat format {info.chat_format}\n  HF-format directory: {info.path}"
    )

    out.rule("[bold]next")
    out.print(
        "Coming in later stages of finch: a sample taxonomy (finch taxonomy check), synthetic data "
        "(finch data generate), fine-tuning (finch train), evaluation, export and chat."
    )
