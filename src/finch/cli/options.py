"""A stage's CLI options made from its typed config (litgpt's way): every field is a flag whose type, help and default
come from the field, so flags, help and defaults cannot drift from the config they set."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from finch.errors import SettingError, UsageError


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli_type(annotation) -> type:
    """The type click parses a field's flag as: the field's own, less None; a list of text or paths as a repeatable
    flag; other lists, unions and choices as text (comma-separated for lists; the config validates the choice)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if len(args) == 1:
            return _cli_type(args[0])
        return str  # e.g. list[str] | str: comma-separated text
    if annotation in (list[str], list[Path]):
        return annotation  # a repeatable flag: --leaves a --leaves b
    if typing.get_origin(annotation) in (list, typing.Literal):
        return str
    return annotation if annotation in (bool, int, float, str, Path) else str


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def config_options(
    config: type[BaseModel], aliases: dict[str, list[str]] | None = None, envvars: dict[str, str] | None = None
) -> list[inspect.Parameter]:
    """One keyword parameter per field of `config`, for a typer command: unset flags are None, so a YAML file's
    values stay unless a flag overrides them. `aliases`: more names for a field's flag (-m, --gpus); `envvars`: an
    environment variable a field's flag reads when it is not given."""
    params = []
    for name, field in config.model_fields.items():
        kind = _cli_type(field.annotation)
        names = [f"{flag(name)}/--no-{name.replace('_', '-')}" if kind is bool else flag(name)]
        names += (aliases or {}).get(name, [])
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
        help = field.description or ""
        if choices:
            help += f" One of: {', '.join(choices)}."
        if field.is_required():
            help += " (required)"
        else:
            help += f" (default: {_shown(field.get_default(call_default_factory=True))})"
        envvar = (envvars or {}).get(name)
        option = typer.Option(None, *names, help=help, show_default=False, envvar=envvar, show_envvar=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    return params


def config_values(config: type[BaseModel], options: dict[str, Any]) -> dict[str, Any]:
    """The fields set on the command line, as the config takes them: comma-separated text becomes a list where the
    field is a list (a field that also takes one string keeps its default spelled alone, e.g. all-linear)."""
    values = {}
    for name, field in config.model_fields.items():
        value = options.get(name)
        if value is None or value == []:
            continue
        annotation = field.annotation
        listed = typing.get_origin(annotation) is list or any(
            typing.get_origin(a) is list for a in typing.get_args(annotation)
        )
        if listed and isinstance(value, str) and value != field.default:
            value = [part.strip() for part in value.split(",") if part.strip()]
        values[name] = value
    return values


def with_config_options(
    command: Callable[..., None],
    config: type[BaseModel],
    aliases: dict[str, list[str]] | None = None,
    envvars: dict[str, str] | None = None,
) -> Callable[..., None]:
    """`command` with its own parameters followed by `config`'s fields as options (see config_options)."""
    own = [p for p in inspect.signature(command).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    options = config_options(config, aliases, envvars)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + options
    command.__signature__ = inspect.Signature(params)
    return command


def as_flags(
    error: SettingError,
    set_on_command_line: set[str],
    spelled: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> UsageError:
    """A config error about a key the command line set (or that nothing set and is required), told as that flag
    (`spelled`: flags named otherwise); about a key of the --config file, told as that file's key."""
    if error.key in set_on_command_line or error.problem.startswith("Field required"):
        return UsageError(f"{(spelled or {}).get(error.key, flag(error.key))}: {error.problem}")
    if config_file is not None:
        return UsageError(f"{config_file}: {error.key}: {error.problem}")
    return error
