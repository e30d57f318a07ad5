"""Benchmarks are a registry: each lives in one module of finch.evaluate.benchmarks, takes one EvalRequest and gives
one EvalResult; `finch evaluate` finds them there and its help lists them."""

from __future__ import annotations

import json
import sys

import pytest

from finch.errors import UsageError
from finch.evaluate import benchmarks
from finch.evaluate.benchmarks import EvalRequest, EvalResult, benchmark, registry
from finch.evaluate.run import evaluate
from tests.conftest import run_finch

SHIPPED = {"human", "key_facts", "metrics", "mmlu", "mmlu_branch", "mt_bench", "mt_bench_branch", "perplexity"}


def test_every_shipped_benchmark_is_registered_from_its_module_and_listed_by_the_cli(tmp_path):
    found = registry()
    assert set(found) == SHIPPED
    for name, entry in found.items():
        module = sys.modules[entry.run.__module__]
        assert module.__name__.startswith("finch.evaluate.benchmarks.") and module.__doc__, name
    shown = run_finch("evaluate", "--help", env={"FINCH_HOME": str(tmp_path)}).stdout
    assert all(name in shown for name in SHIPPED)


@pytest.fixture
def toy():
    """A benchmark added the way a new module adds one; removed again after the test."""

    @benchmark("toy_length", needs_data="any file", base_vs_tuned=True, max_tokens=7)
    def toy_length(request: EvalRequest) -> EvalResult:
        request.notes.append(f"toy: max_tokens {request.max_tokens}")
        scores = {label: {"length": float(len(ref))} for label, ref in request.models.items()}
        return EvalResult(scores, None, {"metric": "length"})

    yield
    benchmarks._REGISTRY.pop("toy_length")


def test_a_registered_benchmark_runs_through_evaluate_with_its_declared_needs(tmp_path, toy):
    with pytest.raises(UsageError, match="--benchmark toy_length needs --data: any file"):
        evaluate({"base": "a", "tuned": "bb"}, "toy_length", None, tmp_path / "out", tmp_path)
    with pytest.raises(UsageError, match="compares a tuned model with its base"):
        evaluate({"tuned": "bb"}, "toy_length", tmp_path, tmp_path / "out", tmp_path)
    results = evaluate({"base": "a", "tuned": "bb"}, "toy_length", tmp_path, tmp_path / "out", tmp_path)
    assert results == {"base": {"length": 1.0}, "tuned": {"length": 2.0}}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["benchmark"] == "toy_length" and "toy: max_tokens 7" in report["notes"]
