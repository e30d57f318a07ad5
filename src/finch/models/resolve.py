"""One resolver for every model reference finch accepts.

A reference is: a built-in name (`gemma-3-270m`, alias `default`); a local HF-format directory; a local `.gguf`
file (or a folder holding exactly one); a run directory holding a LoRA adapter whose base is recorded in it; or a
Hugging Face repo id (`owner/name`), downloaded once into the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from finch.errors import UsageError
from finch.models.builtin import ALIASES, BUILTIN_MODELS, builtin_model

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MARKER = "finch-model.json"  # written into every HF-format directory finch creates in its cache


@dataclass
class ResolvedModel:
    ref: str  # what the user wrote
    kind: str  # builtin | hf | gguf | adapter | hub
    name: str
    path: Path | None  # the local HF-format directory, once it exists
    gguf: Path | None = None  # the GGUF this model comes from, if any
    adapter: Path | None = None  # LoRA adapter directory (kind == "adapter")
    base: ResolvedModel | None = None  # the adapter's base model

    @property
    def needs_preparing(self) -> bool:
        return self.path is None or not (self.path / "config.json").is_file()


def _is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _converted_dir(gguf: Path, models_dir: Path) -> Path:
    """Cache folder for a user's GGUF: named after the file, keyed by its path, size and mtime."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    return models_dir / f"{gguf.stem}-{key}"


def hub_cache_dir(repo_id: str, models_dir: Path) -> Path:
    return models_dir / repo_id.replace("/", "--")


def _adapter_base(run_dir: Path) -> str:
    """The base an adapter trained on: its run's run.yaml says (beside it, or above a checkpoint or the best
    adapter: RUN/checkpoints/step-N, RUN/best), else the adapter's own config."""
    for folder in (run_dir, run_dir.parent, run_dir.parent.parent):
        run_yaml = folder / "run.yaml"
        if run_yaml.is_file():
            data = yaml.safe_load(run_yaml.read_text(encoding="utf-8")) or {}
            base = data.get("base_model") if isinstance(data, dict) else None
            if base:
                return str(base)
    config = json.loads((run_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise UsageError(
            f"{run_dir}: the adapter does not record its base model (no base_model in run.yaml, no "
            "base_model_name_or_path in adapter_config.json); pass the base with --base."
        )
    return str(base)


def resolve_model(ref: str, models_dir: Path, base: str | None = None) -> ResolvedModel:
    """Work out what a reference names, without converting or downloading anything.

    `base` names an adapter's base model when the adapter does not record it (or to override what it records)."""
    ref = ref.strip()
    if not ref:
        raise UsageError("empty model reference; use a built-in name (gemma-3-270m), a path or owner/name.")
    builtin = builtin_model(ref)
    if builtin:
        path = models_dir / builtin.name
        return ResolvedModel(ref, "builtin", builtin.name, path, gguf=models_dir / "gguf" / builtin.gguf_filename)

    path = Path(ref).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise UsageError(f"{ref}: a model file must be a .gguf; for HF weights pass their directory.")
            return ResolvedModel(ref, "gguf", path.stem, _converted_dir(path, models_dir), gguf=path)
        if (path / "adapter_config.json").is_file():
            base_model = resolve_model(base or _adapter_base(path), models_dir)
            return ResolvedModel(ref, "adapter", path.name, base_model.path, adapter=path, base=base_model)
        if _is_hf_dir(path):
            return ResolvedModel(ref, "hf", path.name, path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return resolve_model(str(ggufs[0]), models_dir)
        what = f"{len(ggufs)} .gguf files (name one)" if ggufs else "no config.json, adapter_config.json or .gguf"
        raise UsageError(f"{ref}: not a model directory: it has {what}.")

    looks_like_path = ref.startswith((".", "/", "~")) or ref.endswith(".gguf") or "\\" in ref
    if not looks_like_path and HUB_ID.match(ref):
        return ResolvedModel(ref, "hub", ref, hub_cache_dir(ref, models_dir))
    if looks_like_path:
        raise UsageError(f"{ref}: no such file or directory.")
    names = ", ".join([*BUILTIN_MODELS, *ALIASES])
    raise UsageError(
        f"unknown model reference '{ref}': not a built-in name ({names}), an existing path, "
        "or a Hugging Face repo id (owner/name)."
    )
