"""The benchmarks `finch evaluate` runs, as a registry: each module here registers one or more with @benchmark, and
takes one request and gives one result. Adding a benchmark is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finch.errors import UsageError

BUILTIN = ("gemma-3-270m", "default")  # the built-in student's names: too weak to judge, low absolute scores


@dataclass
class EvalRequest:
    models: dict[str, str]  # label (base, tuned, ...) -> model reference
    data: Path | None
    output: Path  # the report folder
    models_dir: Path
    limit: int | None = None
    max_tokens: int | None = None  # None: the benchmark's own default
    judge: str | None = None
    judge_max_tokens: int | None = None
    imports: list[Path] = field(default_factory=list)  # human: graded sheets to read back
    samples: int = 3  # human: sampled answers per prompt and model
    notes: list[str] = field(default_factory=list)  # how the scores were made, for report.md; benchmarks add theirs


@dataclass
class EvalResult:
    results: dict[str, dict[str, Any]]  # label -> metric -> value
    per_sample: dict[str, dict[str, list]] | None = None  # label -> metric -> one value per sample
    extra: dict[str, Any] = field(default_factory=dict)  # report.json extras: judge, leaves, metric, per_prompt...
    markdown: list[str] | None = None  # more report.md lines after its table (per-leaf verdicts)


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[EvalRequest], EvalResult]
    needs_data: str | None = None  # what --data must be, when the benchmark has no default data
    base_vs_tuned: bool = False  # compares a tuned model with its base: needs exactly those two labels
    max_tokens: int | None = 128  # default answer length; None: the benchmark picks one per model


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, **settings) -> Callable[[Callable[[EvalRequest], EvalResult]], Callable]:
    """Register `run` as the benchmark `name` (settings: the Benchmark fields)."""

    def register(run: Callable[[EvalRequest], EvalResult]) -> Callable[[EvalRequest], EvalResult]:
        _REGISTRY[name] = Benchmark(name, run, **settings)
        return run

    return register


def registry() -> dict[str, Benchmark]:
    """Every benchmark, by name, alphabetically."""
    if not _REGISTRY:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def find(name: str) -> Benchmark:
    benchmarks = registry()
    if name not in benchmarks:
        raise UsageError(f"--benchmark {name}: choose one of {', '.join(benchmarks)}.")
    return benchmarks[name]
