"""Where finch keeps things: XDG folders by default, or everything under one folder when FINCH_HOME is set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_FOLDERS = ("taxonomy", "datasets", "runs", "evals", "logs")


@dataclass(frozen=True)
class Locations:
    config_file: Path
    data_dir: Path  # holds the workspace folders
    cache_dir: Path
    source: str  # "FINCH_HOME" or "XDG", for `finch config show`

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    def workspace_dir(self, name: str) -> Path:
        return self.data_dir / name


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else Path.home() / fallback


def locations() -> Locations:
    home = os.environ.get("FINCH_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        config_file = root / "config.yaml"
        data_dir, cache_dir, source = root, root / "cache", "FINCH_HOME"
    else:
        config_file = _xdg("XDG_CONFIG_HOME", ".config") / "finch" / "config.yaml"
        data_dir = _xdg("XDG_DATA_HOME", ".local/share") / "finch"
        cache_dir = _xdg("XDG_CACHE_HOME", ".cache") / "finch"
        source = "XDG"
    override = os.environ.get("FINCH_CONFIG")
    if override:
        config_file = Path(override).expanduser().resolve()
    return Locations(config_file=config_file, data_dir=data_dir, cache_dir=cache_dir, source=source)
