"""One way to generate text from any model: llama.cpp in-process, transformers, or an OpenAI-compatible server."""

from finch.inference.base import Backend, PromptFormat, StreamChunk
from finch.inference.loader import load_backend
from finch.inference.params import ChatMessage, Completion, GenerationParams

__all__ = ["Backend", "ChatMessage", "Completion", "GenerationParams", "PromptFormat", "StreamChunk", "load_backend"]
