"""`finch export`: a fine-tuned model out of finch, as merged safetensors, a GGUF (with K-quants) or a GGUF LoRA."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from finch.errors import UsageError
from finch.models.resolve import ResolvedModel

FORMATS = ("hf", "gguf", "gguf-lora")
QUANTS = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m")


@dataclass
class ExportResult:
    format: str
    path: Path  # the HF directory or the .gguf file
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the export decided that a user should know

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.is_file())


def default_output(model: ResolvedModel, fmt: str, quant: str) -> Path:
    home = model.adapter if model.adapter is not None else Path.cwd()
    suffix = "hf" if fmt == "hf" else f"{fmt}-{quant}"
    return home / "exports" / f"{model.name}-{suffix}"


def export_model(model: ResolvedModel, fmt: str, quant: str = "q4_k_m", output: Path | None = None) -> ExportResult:
    """Export a resolved model (a run directory / adapter, or a plain model for gguf) into `output` (a folder)."""
    from finch.export.card import write_model_card
    from finch.export.gguf_writer import SUPPORTED_MODEL_TYPES, gguf_tensor_sources, read_text_config, write_gguf
    from finch.export.lora_gguf import write_gguf_lora
    from finch.export.merge import merge_adapter
    from finch.export.modelfile import write_modelfile
    from finch.export.quantize import quantize_gguf, quantize_keeping_changes
    from finch.models.gguf_file import read_gguf
    from finch.models.prepare import prepare_model

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: choose one of {', '.join(FORMATS)}.")
    if quant not in QUANTS:
        raise UsageError(f"--quant {quant}: choose one of {', '.join(QUANTS)}.")
    if fmt in ("hf", "gguf-lora") and model.adapter is None:
        raise UsageError(f"--format {fmt} exports a fine-tuned adapter; {model.ref} is a plain model (use gguf).")
    out_dir = output or default_output(model, fmt, quant)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = model.base if model.base is not None else model
    base_dir = prepare_model(base)
    card = {
        "name": model.name,
        "fmt": fmt,
        "quant": None if fmt == "hf" else quant,
        "base": base.ref,
        "adapter": model.adapter,
    }

    if fmt == "hf":
        merged = merge_adapter(model, base_dir, out_dir)
        files = sorted(merged.iterdir())
        write_model_card(out_dir, files=files, **card)
        return ExportResult(fmt, merged, files)

    if fmt == "gguf-lora":
        target = write_gguf_lora(model.adapter, base_dir, out_dir / f"{model.name}-lora.gguf")
        write_model_card(out_dir, files=[target], **card)
        return ExportResult(fmt, target, [target])

    target = out_dir / f"{model.name}-{quant}.gguf"
    notes = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as work:
        source = merge_adapter(model, base_dir, Path(work) / "merged") if model.adapter is not None else base_dir
        if quant in ("f16", "bf16"):
            write_gguf(source, target, dtype=quant)
        else:  # llama.cpp's own quantiser, from f16, for every quantised type (its q8_0 and K-quants)
            f16 = write_gguf(source, Path(work) / "f16.gguf", dtype="f16")
            if model.adapter is None:
                quantize_gguf(f16, target, quant)
            else:
                config = read_text_config(base_dir)
                arch = SUPPORTED_MODEL_TYPES[config["model_type"]]
                report = quantize_keeping_changes(
                    f16,
                    target,
                    quant,
                    gguf_tensor_sources(base_dir, arch, config),
                    gguf_tensor_sources(source, arch, config),
                )
                notes += [note for note in [report.summary()] if note]
    chat_template = read_gguf(target).fields.get("tokenizer.chat_template")  # what llama.cpp and Ollama will read
    modelfile = write_modelfile(target, chat_template)
    write_model_card(out_dir, files=[target, modelfile], notes=notes, **card)
    return ExportResult(fmt, target, [target, modelfile], notes)
