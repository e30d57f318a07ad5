"""`finch model list|info|download|remove`."""

from __future__ import annotations

import typer
from rich.table import Table

from finch.cli.common import human_bytes, key_value_table, print_json
from finch.cli.ui import out
from finch.config import load_settings
from finch.models.cache import cached_models, remove_cached_model
from finch.models.info import gguf_model_info, model_info
from finch.models.prepare import ready_model
from finch.models.resolve import resolve_model

model_app = typer.Typer(help="Built-in, local and downloaded models.", no_args_is_help=True)

REF_HELP = (
    "A built-in name (gemma-3-270m/default, qwen2.5-coder-1.5b-instruct/teacher), an HF directory, a .gguf, a run "
    "directory, or owner/name."
)


@model_app.command("info")
def info(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Architecture, parameters, context length, vocab, dtype, chat template and local path of a model."""
    model = resolve_model(ref, load_settings().path("models_dir"))
    path = ready_model(model)
    info = gguf_model_info(model, path) if path.suffix == ".gguf" else model_info(model, path)
    if as_json:
        print_json(info.to_dict())
        return
    rows = []
    for key, value in info.to_dict().items():
        if value is None:
            continue
        if key == "parameters":
            value = f"{value:,} ({value / 1e6:.0f}M)"
        elif key == "size_bytes":
            key, value = "size", human_bytes(value)
        elif isinstance(value, list):
            value = ", ".join(value)
        rows.append((key, str(value)))
    out.print(key_value_table(rows))


@model_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Models in finch's cache, with sizes."""
    models_dir = load_settings().path("models_dir")
    models = cached_models(models_dir)
    if as_json:
        print_json([vars(m) for m in models])
        return
    if not models:
        out.print(f"no cached models in {models_dir}; `finch model download default` prepares the built-in one.")
        return
    table = Table(title=f"cached models ({models_dir})", title_justify="left")
    for column in ("name", "kind", "size", "source"):
        table.add_column(column)
    for m in models:
        table.add_row(m.name, m.kind, human_bytes(m.size_bytes), m.source)
    out.print(table)


@model_app.command("download")
def download(ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """Fetch a Hugging Face model into the cache, or prepare a built-in / GGUF model for use."""
    model = resolve_model(ref, load_settings().path("models_dir"))
    path = ready_model(model)
    out.print(f"{model.name} ready at {path}")


@model_app.command("remove")
def remove(name: str = typer.Argument(..., help="A name as `finch model list` shows it.")) -> None:
    """Delete a cached model (a built-in one is prepared again on next use)."""
    for path in remove_cached_model(name, load_settings().path("models_dir")):
        out.print(f"removed {path}")
