"""Export a model for other tools: merged safetensors, GGUF (with K-quants) for llama.cpp and Ollama, GGUF LoRA."""

from finch.export.export import FORMATS, QUANTS, ExportResult, export_model
from finch.export.gguf_writer import GGUF_DTYPES, SUPPORTED_MODEL_TYPES, write_gguf

__all__ = ["FORMATS", "GGUF_DTYPES", "QUANTS", "SUPPORTED_MODEL_TYPES", "ExportResult", "export_model", "write_gguf"]
