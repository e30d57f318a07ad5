"""`finch export`."""

from __future__ import annotations

from pathlib import Path

import typer

from finch.cli.common import human_bytes
from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import out
from finch.config import load_settings
from finch.errors import UsageError
from finch.export.config import ExportConfig


def export(
    config_file: Path = typer.Option(None, "--config", help="A YAML file with any of these settings; flags win."),
    **settings,
) -> None:
    """Export a fine-tuned model: merged HF weights, a GGUF with an Ollama Modelfile, or a GGUF LoRA. Every setting
    is a flag and a key of the --config file."""
    from finch.errors import SettingError
    from finch.export import export_model
    from finch.models.resolve import resolve_model
    from finch.stage_config import load_stage_config

    overrides = config_values(ExportConfig, settings)
    try:
        config = load_stage_config(ExportConfig, config_file, overrides, "export")
    except SettingError as e:
        raise as_flags(e, set(overrides)) from None
    models_dir = load_settings().path("models_dir")
    model = resolve_model(config.adapter, models_dir, base=config.base)
    if config.base is not None and model.adapter is None:
        raise UsageError(f"--base goes with an adapter; {config.adapter} has none.")
    result = export_model(model, config.format, config.quant, config.output)
    for file in result.files:
        if file.is_file():
            out.print(f"wrote {file} ({human_bytes(file.stat().st_size)})")
    for note in result.notes:
        out.print(note, markup=False)
    out.print(f"exported {model.name} as {config.format}: {result.path}")


with_config_options(export, ExportConfig)
