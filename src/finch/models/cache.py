"""The model cache: what finch has assembled, converted or downloaded, and removing it again."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError
from finch.models.builtin import BUILTIN_MODELS, builtin_model
from finch.models.info import folder_size
from finch.models.resolve import MARKER


@dataclass
class CachedModel:
    name: str
    kind: str
    path: Path
    size_bytes: int
    source: str


def cached_models(models_dir: Path) -> list[CachedModel]:
    found: list[CachedModel] = []
    if not models_dir.is_dir():
        return found
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        marker = folder / MARKER
        if marker.is_file():
            data = json.loads(marker.read_text(encoding="utf-8"))
            found.append(
                CachedModel(folder.name, data.get("kind", "?"), folder, folder_size(folder), data.get("source", ""))
            )
    for builtin in BUILTIN_MODELS.values():
        gguf = models_dir / "gguf" / builtin.gguf_filename
        if gguf.is_file():
            found.append(CachedModel(f"{builtin.name} (gguf)", "builtin", gguf, gguf.stat().st_size, "PyPI"))
    return found


def remove_cached_model(name: str, models_dir: Path) -> list[Path]:
    """Delete a cached model by the name `finch model list` shows; a built-in name removes its GGUF too."""
    key = name.removesuffix(" (gguf)")
    builtin = builtin_model(key)
    targets: list[Path] = []
    if builtin:
        targets = [models_dir / builtin.name, models_dir / "gguf" / builtin.gguf_filename]
    else:
        folder = models_dir / key.replace("/", "--")
        if not folder.name.startswith(".") and (folder / MARKER).is_file():  # only folders finch made
            targets = [folder]
    targets = [t for t in targets if t.exists()]
    if not targets:
        known = ", ".join(m.name for m in cached_models(models_dir)) or "none"
        raise UsageError(f"no cached model named '{name}'; cached: {known}.")
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    return targets
