"""One dataset directory: train/test in chat `messages` format, per-leaf files, the knowledge MCQ benchmark,
the recipe (sources, ratios, phases) and the report. Also `finch data list|show`."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import yaml

from finch.errors import FinchError, UsageError
from finch.fileio import atomic_write_json, atomic_write_text, read_jsonl
from finch.sdg.chunking import CountTokens, approximate_tokens
from finch.sdg.generate import (
    WORK,
    GenerateOptions,
    LeafPlan,
    NoProgress,
    Progress,
    plan_leaf,
    run_leaf,
    user_text,
)
from finch.sdg.pipeline import Pipeline
from finch.taxonomy import LeafResult

PHASES = ("knowledge", "skills")


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _row(plan: LeafPlan, user: str, answer: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer.strip()}],
        "metadata": {"leaf": plan.name, "kind": plan.kind, "phase": plan.phase, **meta},
    }


def _origin(item: dict[str, Any]) -> dict[str, Any]:
    """The document and page a PDF chunk's items come from, and the key facts a `cover` pair was written for
    (finch.sdg.generate), for their rows' metadata."""
    return {key: item[key] for key in ("document", "page", "covers") if key in item}


def _check_options(output: Path, settings: dict[str, Any]) -> None:
    """A rerun into the same folder must mean the same run, or resuming would mix two datasets."""
    path = output / WORK / "options.json"
    if path.exists():
        before = json.loads(path.read_text())
        changed = [f"{k} {before.get(k)!r} → {v!r}" for k, v in settings.items() if before.get(k) != v]
        if changed:
            raise UsageError(
                f"{output} holds a run with other settings ({'; '.join(changed)}); "
                "use another --output, or delete that folder to start over."
            )
    else:
        atomic_write_json(path, settings)


def generate_dataset(
    leaves: list[LeafResult],
    backend,
    pipeline: Pipeline,
    options: GenerateOptions,
    count_tokens: CountTokens = approximate_tokens,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate (or resume) the dataset for `leaves` into `options.output`; returns the report. A teacher
    failure keeps everything finished so far, writes the outputs of the complete leaves, and raises."""
    progress = progress or NoProgress()
    invalid = [leaf.name for leaf in leaves if not leaf.valid or leaf.leaf is None]
    if invalid:
        raise UsageError(f"invalid leaves: {', '.join(invalid)}; run `finch taxonomy check` and fix them first.")
    if not leaves:
        raise UsageError("no leaves to generate from; check --taxonomy and --leaves.")
    teacher = backend.model_name
    options.output.mkdir(parents=True, exist_ok=True)
    _check_options(
        options.output,
        {
            "pipeline": pipeline.name,
            "teacher": teacher,
            "scale": options.scale,
            "seed": options.seed,
            "chunk_tokens": options.chunk_tokens,
            "chunk_overlap": options.chunk_overlap,
            "limit_per_leaf": options.limit_per_leaf,
        },
    )
    plans = [plan_leaf(r, options, count_tokens) for r in leaves]
    started = time.monotonic()
    results: dict[str, dict] = {}
    failure: BaseException | None = None
    for plan in plans:
        try:
            results[plan.slug] = run_leaf(backend, pipeline, plan, options, progress)
        except (FinchError, KeyboardInterrupt) as e:
            failure = e
            break
    report = write_outputs(plans, results, pipeline, teacher, options, time.monotonic() - started)
    if isinstance(failure, KeyboardInterrupt):
        raise failure  # the finished leaves are written and reported; the journals hold the rest
    if failure is not None:
        done = sum(leaf["status"] == "complete" for leaf in report["leaves"])
        raise FinchError(
            f"{failure} — kept the partial output in {options.output} ({done} of {len(plans)} leaves complete); "
            "rerun the same command to resume."
        )
    return report


def _replay_rows(path: Path, count: int, rng: random.Random) -> list[dict]:
    try:
        rows = read_jsonl(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--replay {path}: cannot read it as JSONL ({e}).") from None
    valid = [r for r in rows if isinstance(r, dict) and isinstance(r.get("messages"), list) and r["messages"]]
    if not valid:
        raise UsageError(f"--replay {path}: no rows with a `messages` list; expected chat-format JSONL.")
    picked = rng.sample(valid, min(count, len(valid)))
    while len(picked) < count:  # more asked than there are: repeat, each pass in a new order
        picked += rng.sample(valid, min(count - len(picked), len(valid)))
    return picked


def write_outputs(
    plans: list[LeafPlan],
    results: dict[str, dict],
    pipeline: Pipeline,
    teacher: str,
    options: GenerateOptions,
    seconds: float,
) -> dict[str, Any]:
    out = options.output
    meta = {"pipeline": pipeline.name, "teacher": teacher}
    train: dict[str, list[dict]] = {phase: [] for phase in PHASES}
    test, mcq, leaves = [], [], []
    for plan in plans:
        result = results.get(plan.slug)
        leaf_test = [_row(plan, user_text(e, plan.kind), e["answer"], {**meta, "scores": {}}) for e in plan.held_out]
        entry: dict[str, Any] = {"leaf": plan.name, "kind": plan.kind, "flavour": plan.flavour, "target": plan.target}
        if result is None:
            leaves.append({**entry, "status": "not finished", "train": 0, "test": 0, "stages": []})
            continue
        leaf_train = [
            _row(
                plan,
                user_text(item, plan.kind),
                item["answer"],
                {**meta, "scores": item.get("scores", {}), **_origin(item)},
            )
            for item in result["items"]
        ]
        # the seed examples the teacher was shown are training rows too: written by a person, in the very form the
        # leaf asks for (a small teacher's rows drift from it), and never the held-out ones
        leaf_seeds = [
            _row(plan, user_text(e, plan.kind), e["answer"], {**meta, "source": "seed"}) for e in plan.examples
        ]
        leaf_train += leaf_seeds
        atomic_write_text(out / "leaves" / f"{plan.slug}.train.jsonl", _jsonl(leaf_train))
        atomic_write_text(out / "leaves" / f"{plan.slug}.test.jsonl", _jsonl(leaf_test))
        train[plan.phase] += leaf_train
        test += leaf_test
        mcq += result["mcq"]
        leaves.append(
            {
                **entry,
                "status": "complete",
                "train": len(leaf_train),
                "seed_rows": len(leaf_seeds),
                "test": len(leaf_test),
                "stages": result["stages"],
            }
        )
    replay_counts = shuffle_and_mix_replay(train, options)
    rows = train["knowledge"] + train["skills"]  # phased training reads the knowledge rows first
    atomic_write_text(out / "train.jsonl", _jsonl(rows))
    atomic_write_text(out / "test.jsonl", _jsonl(test))
    atomic_write_text(out / "knowledge_mcq.jsonl", _jsonl(mcq))
    recipe = data_recipe(pipeline.name, teacher, options, {phase: len(train[phase]) for phase in PHASES}, replay_counts)
    atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    report = {
        **meta,
        "output": str(out),
        "scale": options.scale,
        "seed": options.seed,
        "seconds": round(seconds, 1),
        "complete": all(leaf["status"] == "complete" for leaf in leaves),
        "train": len(rows),
        "test": len(test),
        "knowledge_mcq": len(mcq),
        "replay": sum(replay_counts.values()),
        "leaves": leaves,
    }
    atomic_write_json(out / "report.json", report)
    return report


def shuffle_and_mix_replay(train: dict[str, list[dict]], options: GenerateOptions) -> dict[str, int]:
    """Each phase's rows in a seeded shuffle, with replay rows (options.replay) spread through them at
    options.replay_ratio; returns the replay rows added per phase."""
    rng = random.Random(options.seed)
    replay_counts = {}
    for phase in PHASES:
        rng.shuffle(train[phase])
        if options.replay is not None and options.replay_ratio > 0 and train[phase]:
            count = round(options.replay_ratio * len(train[phase]))
            tagged = [
                {
                    "messages": r["messages"],
                    "metadata": {
                        **r.get("metadata", {}),
                        "leaf": "replay",
                        "kind": "replay",
                        "phase": phase,
                        "pipeline": "replay",
                        "teacher": None,
                    },
                }
                for r in _replay_rows(options.replay, count, rng)
            ]
            replay_counts[phase] = len(tagged)
            train[phase] = _interleave(train[phase], tagged, rng)
    return replay_counts


def data_recipe(
    pipeline: str, teacher: str, options: GenerateOptions, rows: dict[str, int], replay_counts: dict[str, int]
) -> dict:
    """recipe.yaml: how the dataset was made, phase by phase."""
    phases = []
    for phase in PHASES:
        sources: list[dict] = [{"generated": f"{phase} leaves", "ratio": 1.0}]
        if phase in replay_counts:
            sources.append({"replay": str(options.replay), "ratio": options.replay_ratio, "rows": replay_counts[phase]})
        phases.append({"name": phase, "rows": rows[phase], "sources": sources})
    return {
        "pipeline": pipeline,
        "teacher": teacher,
        "scale": options.scale,
        "seed": options.seed,
        "phases": phases,
        "files": {"train": "train.jsonl", "test": "test.jsonl", "knowledge_mcq": "knowledge_mcq.jsonl"},
    }


def _interleave(rows: list[dict], extra: list[dict], rng: random.Random) -> list[dict]:
    mixed = rows + extra
    rng.shuffle(mixed)
    return mixed


def list_datasets(datasets_dir: Path) -> list[dict[str, Any]]:
    """Every folder under `datasets_dir` with a report.json, newest first."""
    found = []
    if not datasets_dir.is_dir():
        return found
    for report_file in datasets_dir.glob("*/report.json"):
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append(
            {
                "name": report_file.parent.name,
                "path": str(report_file.parent),
                "modified": report_file.stat().st_mtime,
                "pipeline": report.get("pipeline"),
                "teacher": report.get("teacher"),
                "train": report.get("train", 0),
                "test": report.get("test", 0),
                "leaves": len(report.get("leaves", [])),
                "complete": report.get("complete", False),
            }
        )
    return sorted(found, key=lambda d: d["modified"], reverse=True)


def load_dataset(folder: Path, samples: int = 3, seed: int = 0) -> dict[str, Any]:
    """The report of a dataset folder and a few training rows, for `finch data show`."""
    report_file = folder / "report.json"
    if not report_file.is_file():
        raise UsageError(
            f"{folder}: no report.json there; is it a folder made by `finch data generate` or `finch data import`?"
        )
    report = json.loads(report_file.read_text(encoding="utf-8"))
    rows = read_jsonl(folder / "train.jsonl")
    picked = random.Random(seed).sample(rows, min(samples, len(rows)))
    return {"report": report, "samples": picked}
