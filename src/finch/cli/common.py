"""Pieces every CLI module uses."""

from __future__ import annotations

import json
from typing import Any

from finch.cli.ui import out


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
