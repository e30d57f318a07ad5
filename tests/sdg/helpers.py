"""Shared pieces of the SDG tests: the sample taxonomy's leaves, one call that runs a generation, row readers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from finch.inference.http_backend import HttpBackend
from finch.sdg import GenerateOptions, generate_dataset, load_pipeline
from finch.taxonomy import check_taxonomy, sample_taxonomy_dir

MARKERS = ("OFFTOPIC", "GARBLED", "BADANSWER", "LONG", "WRONG")


def sample_leaves():
    report = check_taxonomy([sample_taxonomy_dir()])
    assert report.ok
    return report.leaves


def generate(url: str, output: Path, pipeline: str = "full", workers: int = 4, retries: int = 0, **options):
    backend = HttpBackend(url, retries=retries)
    try:
        return generate_dataset(
            sample_leaves(),
            backend,
            load_pipeline(pipeline),
            GenerateOptions(output=output, workers=workers, **options),
        )
    finally:
        backend.close()


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def journals(output: Path) -> dict[str, list[dict]]:
    """Every journal record, by journal file name."""
    return {str(p.relative_to(output)): rows(p) for p in sorted((output / ".work").glob("*/*.jsonl"))}


if __name__ == "__main__":  # the kill -9 test runs a generation in a child process it can kill
    generate(sys.argv[1], Path(sys.argv[2]), workers=int(sys.argv[3]))
