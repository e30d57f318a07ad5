"""Pieces every CLI module uses."""

from __future__ import annotations

import json
from typing import Any

import typer

from finch.cli.ui import out
from finch.errors import NotImplementedYet

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def key_value_table(rows: list[tuple[str, str]]):
    """Two columns, bold keys, no borders: how `info` commands print."""
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def pending_command(app: typer.Typer, name: str, issue: str, help: str) -> None:
    """Register a command whose work has not landed: it exits 2 and says so, whatever it is given."""

    def command(ctx: typer.Context) -> None:
        raise NotImplementedYet(ctx.command_path.removeprefix("finch "), issue)

    app.command(name, help=f"{help} (not implemented yet)", context_settings=PASS_THROUGH)(command)
