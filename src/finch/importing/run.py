"""`finch data import` as a library call: files in the formats peers use, out a dataset folder finch trains from.

The steps, each reported: read every file (formats.py); refuse the import when any row cannot be read, listing
every problem, unless skip_invalid leaves those rows out (a file that mixes formats is always refused: which rows
are the odd ones is a guess); scrub personal identifiers (pii.py); drop exact and near duplicates (finch.sdg's
MinHash); hold out a seeded test split (split.py); drop training rows that contain a test row's text or a held-out
seed question of the taxonomy (contamination.py); count token lengths in a student's tokens (report.py). Then
train.jsonl, test.jsonl and report.json are written, each atomically, report.json last: a folder is a dataset
once it has one.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finch.errors import FinchError, UsageError
from finch.fileio import atomic_write_json, atomic_write_text
from finch.importing.contamination import NGRAM, OverlapIndex, Reference
from finch.importing.formats import FORMATS, Problem, Row, read_file
from finch.importing.pii import TOKENS, scrub
from finch.importing.report import length_summary, plot_lengths, token_lengths
from finch.importing.split import split_rows
from finch.sdg.dedup import NearDuplicates, normalise

PIPELINE = "import"  # report.json's pipeline: `finch data list` and `show` tell imported datasets by it
KIND = "imported"  # the rows' metadata.kind: neither knowledge nor skill (phased training reads them as skills)


@dataclass(frozen=True)
class ImportOptions:
    files: tuple[Path, ...]
    output: Path
    format: str = "auto"  # one of FORMATS
    test_ratio: float = 0.1
    seed: int = 42
    skip_invalid: bool = False  # leave out the rows that cannot be read (listed in the report) instead of refusing
    dedup: bool = True
    scrub_pii: bool = True
    decontaminate: bool = True
    taxonomy: Path | None = None  # whose held-out seed questions training rows must not contain
    model: str | None = None  # the student whose tokens the length histogram counts


class ImportRejected(FinchError):
    """Rows that cannot be imported; nothing was written. `problems` lists each with its file and line."""

    def __init__(self, problems: list[Problem]):
        mixed = any(p.mixed_format for p in problems)
        advice = "split the files that mix formats" if mixed else "fix them, or pass --skip-invalid to leave them out"
        super().__init__(f"{len(problems)} rows cannot be imported (each listed above); nothing written: {advice}.")
        self.problems = problems


def import_dataset(options: ImportOptions, models_dir: Path) -> dict[str, Any]:
    """Import `options.files` into `options.output`; returns the report (also written as report.json)."""
    started = time.monotonic()
    _check_options(options)
    read = [read_file(path, options.format) for path in options.files]
    problems = [problem for result in read for problem in result.problems]
    if problems and (not options.skip_invalid or any(p.mixed_format for p in problems)):
        raise ImportRejected(problems)
    rows = [row for result in read for row in result.rows]
    if not rows:
        raise FinchError(f"no rows to import in {', '.join(map(str, options.files))}.")
    skipped: list[dict[str, str]] = [
        {"source": f"{p.file}:{p.line}", "step": "invalid", "reason": p.reason} for p in problems
    ]
    pii = _scrub(rows) if options.scrub_pii else None
    duplicates = None
    if options.dedup:
        rows, dropped = _deduplicate(rows)
        skipped += dropped
        duplicates = {kind: sum(entry["kind"] == kind for entry in dropped) for kind in ("exact", "near")}
    train, test = split_rows(rows, options.test_ratio, options.seed)
    contamination = None
    if options.decontaminate:
        train, dropped, contamination = _decontaminate(train, test, options.taxonomy)
        skipped += dropped
    if not train:
        steps = Counter(entry["step"] for entry in skipped)
        raise FinchError(
            f"no training row is left: {steps['duplicate']} duplicates and {steps['contaminated']} rows repeating a "
            "test row or a held-out question were dropped; nothing written (--no-dedup, --keep-contaminated keep them)."
        )
    counted, lengths = None, None
    if options.model is not None:
        counted = token_lengths([row.messages for row in train + test], options.model, models_dir)
        lengths = length_summary(counted, options.model, _default_max_seq_len())
    report = {
        "pipeline": PIPELINE,
        "teacher": None,
        "output": str(options.output),
        "complete": True,
        "train": len(train),
        "test": len(test),
        "seed": options.seed,
        "test_ratio": options.test_ratio,
        "files": [
            {
                "file": str(result.file),
                "container": result.container,
                "format": result.format,
                "rows": len(result.rows),
                "invalid": len(result.problems),
            }
            for result in read
        ],
        "formats": dict(Counter(row.format for result in read for row in result.rows)),
        "pii": pii,
        "duplicates": duplicates,
        "contamination": contamination,
        "lengths": lengths,
        "skipped": skipped,
        "seconds": round(time.monotonic() - started, 1),
    }
    _write(options.output, train, test, report, counted)
    return report


def _check_options(options: ImportOptions) -> None:
    if options.format not in FORMATS:
        raise UsageError(f"--format {options.format}: choose {', '.join(FORMATS[:-1])} or {FORMATS[-1]}.")
    if not 0 <= options.test_ratio < 1:
        raise UsageError(f"--test-ratio {options.test_ratio}: give a share of the rows, at least 0 and below 1.")
    if not options.files:
        raise UsageError("no files to import: give JSON Lines, JSON or CSV files.")
    for path in options.files:
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "no such file"
            raise UsageError(f"{path}: {what}; give JSON Lines, JSON or CSV files of chat rows.")
    if options.taxonomy is not None and not options.taxonomy.is_dir():
        raise UsageError(f"--taxonomy {options.taxonomy}: no such folder.")
    if options.output.exists() and not options.output.is_dir():
        raise UsageError(f"--output {options.output}: a file; give a folder for the dataset.")
    report = options.output / "report.json"
    if report.is_file() and _pipeline(report) != PIPELINE:
        raise UsageError(
            f"--output {options.output} holds a dataset `finch data generate` made; import into another folder."
        )


def _pipeline(report: Path) -> str | None:
    try:
        return json.loads(report.read_text(encoding="utf-8")).get("pipeline")
    except (OSError, ValueError, AttributeError):
        return None


def _scrub(rows: list[Row]) -> dict[str, int]:
    """Scrub every turn of every row in place; the count replaced per kind, and the rows changed."""
    counts: Counter = Counter()
    changed = 0
    for row in rows:
        before = sum(counts.values())
        for message in row.messages:
            message["content"] = scrub(message["content"], counts)
        changed += sum(counts.values()) > before
    return {**{kind: counts[kind] for kind in TOKENS}, "rows": changed}


def _conversation_text(row: Row) -> str:
    """What duplicates and overlaps are judged on: the user and assistant turns (a system prompt shared by every
    row says nothing about the rows)."""
    return "\n".join(m["content"] for m in row.messages if m["role"] != "system")


def _deduplicate(rows: list[Row]) -> tuple[list[Row], list[dict[str, str]]]:
    seen, first = NearDuplicates(), {}
    kept, dropped = [], []
    for row in rows:
        text = _conversation_text(row)
        match = seen.check(text)
        if match == "exact":
            dropped.append(_skip(row, "duplicate", f"exact duplicate of {first[normalise(text)]}", kind="exact"))
        elif match == "near":
            reason = f"near duplicate of an earlier row ({seen.threshold:.0%} of its word 3-grams or more)"
            dropped.append(_skip(row, "duplicate", reason, kind="near"))
        else:
            seen.add(text)
            first[normalise(text)] = row.source
            kept.append(row)
    return kept, dropped


def _decontaminate(
    train: list[Row], test: list[Row], taxonomy: Path | None
) -> tuple[list[Row], list[dict[str, str]], dict[str, Any]]:
    """Training rows without the words of a test row's turn or a held-out seed question; the dropped ones."""
    held_out = held_out_questions(taxonomy) if taxonomy is not None else []
    references = [
        Reference(m["content"], f"test row {row.source}", "test")
        for row in test
        for m in row.messages
        if m["role"] != "system"
    ]
    index = OverlapIndex(references + held_out)
    kept, dropped = [], []
    for row in train:
        found = index.match([m["content"] for m in row.messages if m["role"] != "system"])
        if found is None:
            kept.append(row)
        else:
            reference, words = found
            dropped.append(_skip(row, "contaminated", f"repeats {reference.source}: '{words}'", reference.kind))
    counts = Counter(entry["kind"] for entry in dropped)
    summary = {
        "ngram": NGRAM,
        "taxonomy": str(taxonomy) if taxonomy is not None else None,
        "held_out_questions": len(held_out),
        "test": counts["test"],
        "held_out": counts["held_out"],
    }
    return kept, dropped, summary


def held_out_questions(taxonomy: Path) -> list[Reference]:
    """The seed questions each leaf of `taxonomy` holds out (finch.taxonomy.hold_out): never to be trained on."""
    from finch.taxonomy import check_taxonomy, seed_rows, split_seed_rows

    report = check_taxonomy([taxonomy], skip_documents=True)
    if not report.ok:
        raise FinchError(
            f"--taxonomy {taxonomy}: some leaves have errors, so their held-out questions cannot be read; "
            f"fix them (finch taxonomy check {taxonomy}), or pass --keep-contaminated to skip the check."
        )
    _, held = split_seed_rows(seed_rows(report))
    return [
        Reference(row["messages"][0]["content"], f"held-out question of {row['metadata']['leaf']}", "held_out")
        for row in held
    ]


def _skip(row: Row, step: str, reason: str, kind: str) -> dict[str, str]:
    return {"source": row.source, "step": step, "reason": reason, "kind": kind}


def _default_max_seq_len() -> int:
    from finch.train.config import TrainConfig

    return TrainConfig.model_fields["max_seq_len"].default


def _row(row: Row) -> dict[str, Any]:
    return {
        "messages": row.messages,
        "metadata": {"leaf": f"import/{row.file.name}", "kind": KIND, "source": row.source, "format": row.format},
    }


def _jsonl(rows: list[Row]) -> str:
    return "".join(json.dumps(_row(row), ensure_ascii=False) + "\n" for row in rows)


def _write(
    output: Path, train: list[Row], test: list[Row], report: dict, lengths: list[tuple[int, int]] | None
) -> None:
    """Each file whole or not at all; an earlier import's files that this one does not write are removed, and
    report.json goes first and comes back last, so a folder caught halfway is not taken for a dataset."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").unlink(missing_ok=True)
    atomic_write_text(output / "train.jsonl", _jsonl(train))
    if test:
        atomic_write_text(output / "test.jsonl", _jsonl(test))
    else:
        (output / "test.jsonl").unlink(missing_ok=True)  # finch train reads a test.jsonl that is there
    if lengths is not None:
        plot_lengths(lengths, report["lengths"], output / "lengths.png")
    else:
        (output / "lengths.png").unlink(missing_ok=True)
    atomic_write_json(output / "report.json", report)
