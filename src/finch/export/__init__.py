"""Export a model for other tools: GGUF for llama.cpp and Ollama."""

from finch.export.gguf_writer import GGUF_DTYPES, SUPPORTED_MODEL_TYPES, write_gguf

__all__ = ["GGUF_DTYPES", "SUPPORTED_MODEL_TYPES", "write_gguf"]
