"""The export settings: one pydantic model, read from a YAML file and overridden by flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(
        description="A run directory (or LoRA adapter) to export; or, with format gguf, any model reference."
    )
    base: str | None = Field(None, description="The base model, when the adapter does not record it.")
    format: Literal["hf", "gguf", "gguf-lora"] = Field(
        "gguf", description="hf (merged safetensors), gguf (with an Ollama Modelfile), or gguf-lora."
    )
    quant: Literal["f16", "bf16", "q8_0", "q4_k_m", "q5_k_m"] = Field("q4_k_m", description="The GGUF's type.")
    output: Path | None = Field(None, description="Folder to write into; none: RUN/exports/NAME-FORMAT.")
