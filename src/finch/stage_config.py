"""A stage's settings (one pydantic model per stage: training, data generation) from a YAML file and the flags set
on top; a bad value is a SettingError naming the file or the stage, and the key."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from finch.errors import SettingError, UsageError

Config = TypeVar("Config", bound=BaseModel)


def setting_error(e: ValidationError, where: str) -> SettingError:
    err = e.errors()[0]
    key = str(err["loc"][0]) if err["loc"] else "config"  # the setting, also for one item of a list
    msg = err["msg"].removeprefix("Value error, ")
    got = f" (got {err['input']!r})" if err["loc"] else ""
    return SettingError(where, key, f"{msg}{got}.")


def load_stage_config(config: type[Config], config_file: Path | None, overrides: dict, stage: str) -> Config:
    """`config_file` (YAML, if given) with the set overrides (not None) on top, validated as `config`."""
    values: dict = {}
    if config_file is not None:
        try:
            data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"{config_file}: cannot read it ({e.strerror}).") from None
        except yaml.YAMLError as e:
            raise UsageError(f"{config_file}: invalid YAML: {getattr(e, 'problem', e)}.") from None
        if data is not None and not isinstance(data, dict):
            raise UsageError(f"{config_file}: expected a mapping of {stage} settings (keys to values).")
        values.update(data or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return config.model_validate(values)
    except ValidationError as e:
        raise setting_error(e, str(config_file) if config_file else f"{stage} settings") from None
