"""Files the import tests write: rows in each format, and reading a dataset folder back."""

from __future__ import annotations

import json
from pathlib import Path

from finch.importing import ImportOptions, import_dataset


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_import(tmp_path: Path, *files: Path, **options) -> tuple[dict, Path]:
    """import_dataset into tmp_path/out with the test's options (no test split unless asked); (report, folder)."""
    output = options.pop("output", tmp_path / "out")
    options.setdefault("test_ratio", 0.0)
    report = import_dataset(ImportOptions(files=files, output=output, **options), tmp_path / "models")
    return report, output
