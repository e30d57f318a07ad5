"""`finch export`."""

from __future__ import annotations

from pathlib import Path

import typer

from finch.cli.common import human_bytes
from finch.cli.ui import out
from finch.config import load_settings
from finch.errors import UsageError


def export(
    adapter: str = typer.Option(
        ...,
        "--adapter",
        help="A run directory (or LoRA adapter) to export; or, with --format gguf, any model reference.",
    ),
    base: str = typer.Option(None, help="The base model, when the adapter does not record it."),
    fmt: str = typer.Option("gguf", "--format", help="hf (merged safetensors), gguf, or gguf-lora."),
    quant: str = typer.Option("q4_k_m", help="GGUF type: f16, bf16, q8_0, q4_k_m or q5_k_m."),
    output: Path = typer.Option(None, help="Folder to write into (default: RUN/exports/NAME-FORMAT)."),
) -> None:
    """Export a fine-tuned model: merged HF weights, a GGUF with an Ollama Modelfile, or a GGUF LoRA."""
    from finch.export import export_model
    from finch.models.resolve import resolve_model

    models_dir = load_settings().path("models_dir")
    model = resolve_model(adapter, models_dir, base=base)
    if base is not None and model.adapter is None:
        raise UsageError(f"--base goes with an adapter; {adapter} has none.")
    result = export_model(model, fmt, quant, output)
    for file in result.files:
        if file.is_file():
            out.print(f"wrote {file} ({human_bytes(file.stat().st_size)})")
    for note in result.notes:
        out.print(note, markup=False)
    out.print(f"exported {model.name} as {fmt}: {result.path}")
