"""finch's configuration: a pydantic model saved as YAML, overridable per key by FINCH_<KEY> variables."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from finch.errors import UsageError
from finch.fileio import atomic_write_text
from finch.models.builtin import DEFAULT_STUDENT, DEFAULT_TEACHER
from finch.paths import WORKSPACE_FOLDERS, Locations, locations
from finch.taxonomy.check import sample_taxonomy_dir


class Config(BaseModel):
    """What a user may set in config.yaml. Path fields left empty mean the workspace default."""

    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_STUDENT
    teacher: str = DEFAULT_TEACHER
    taxonomy_dir: Path | None = None
    datasets_dir: Path | None = None
    runs_dir: Path | None = None
    evals_dir: Path | None = None
    logs_dir: Path | None = None
    models_dir: Path | None = None


def env_var(key: str) -> str:
    return f"FINCH_{key.upper()}"


@dataclass
class Settings:
    """The effective configuration, with every path filled in, and where each value came from."""

    config: Config
    sources: dict[str, str]  # key -> "default" | "file" | "env (FINCH_…)"
    locations: Locations

    def path(self, key: str) -> Path:
        value = getattr(self.config, key)
        assert isinstance(value, Path), key
        return value


def _key_lines(text: str) -> dict[str, int]:
    """Line numbers (1-based) of the top-level keys, so errors can point at them."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"{path}{where}: invalid YAML: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of keys to values, found {type(data).__name__}.")
    known = list(Config.model_fields)
    lines = _key_lines(text)
    for key in data:
        if key not in known:
            raise UsageError(f"{path}:{lines.get(key, 1)}: unknown key '{key}'; known keys: {', '.join(known)}.")
    return data


def _validate(values: dict, where: dict[str, str]) -> Config:
    try:
        return Config.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        raise UsageError(f"{where.get(key, 'config')}: key '{key}': {err['msg']} (got {err['input']!r}).") from None


def load_settings(locs: Locations | None = None) -> Settings:
    locs = locs or locations()
    values: dict = {}
    sources = {key: "default" for key in Config.model_fields}
    where: dict[str, str] = {}
    if locs.config_file.is_file():
        lines = _key_lines(locs.config_file.read_text(encoding="utf-8", errors="replace"))
        for key, value in _read_file(locs.config_file).items():
            values[key] = value
            sources[key] = "file"
            where[key] = f"{locs.config_file}:{lines.get(key, 1)}"
    for key in Config.model_fields:
        var = env_var(key)
        if os.environ.get(var):
            values[key] = os.environ[var]
            sources[key] = f"env ({var})"
            where[key] = f"environment variable {var}"
    config = _validate(values, where)
    defaults = {f"{name}_dir": locs.workspace_dir(name) for name in WORKSPACE_FOLDERS}
    defaults["models_dir"] = locs.models_dir
    for key, default in defaults.items():
        value = getattr(config, key)
        setattr(config, key, default if value is None else Path(value).expanduser().resolve())
        if value is None and locs.source == "FINCH_HOME":
            sources[key] = "env (FINCH_HOME)"
    return Settings(config=config, sources=sources, locations=locs)


def save_config(config: Config, path: Path) -> None:
    data = config.model_dump(mode="json", exclude_none=True)
    header = "# finch configuration. `finch config show` prints the effective values and where each came from.\n"
    atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False))


def init_workspace(settings: Settings, config: Config, force: bool = False) -> list[Path]:
    """Write config.yaml (kept unless force) and create the workspace folders; returns what was created."""
    created: list[Path] = []
    cfg_file = settings.locations.config_file
    if force or not cfg_file.exists():
        save_config(config, cfg_file)
        created.append(cfg_file)
    for key in [f"{name}_dir" for name in WORKSPACE_FOLDERS] + ["models_dir"]:
        folder = settings.path(key)
        if not folder.exists():
            folder.mkdir(parents=True)
            created.append(folder)
    created += copy_sample_taxonomy(settings.path("taxonomy_dir"))
    return created


def copy_sample_taxonomy(taxonomy_dir: Path) -> list[Path]:
    """Copy the packaged sample taxonomy into an empty taxonomy folder; a folder with anything in it is left alone."""
    if any(taxonomy_dir.iterdir()):
        return []
    sample = sample_taxonomy_dir()
    shutil.copytree(sample, taxonomy_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return [taxonomy_dir / p.name for p in sorted(sample.iterdir())]
