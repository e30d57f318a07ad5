"""--report-to: steps reach the tracker; a tracker that is not installed is one clear line before training."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest

from finch.train import TrainConfig
from finch.train.runs import start_run
from tests.conftest import assert_one_line_error, run_finch
from tests.train.datasets import write_dataset


def test_a_tracker_that_is_not_installed_is_one_line(finch_home, tmp_path):
    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    result = run_finch("train", "--data", str(write_dataset(tmp_path / "data")), "--report-to", "mlflow")
    assert_one_line_error(result, 2, "--report-to mlflow", "not installed", "pip install mlflow")


def test_steps_reach_a_fake_wandb(tmp_path, tiny_gemma3_dir, monkeypatch):
    """A FAKE wandb module (recording calls), standing in for the real package, which is not installed here."""
    calls = []

    class FakeRun:
        def log(self, metrics, step):
            calls.append((step, metrics))

        def finish(self):
            calls.append("finish")

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kwargs: calls.append(("init", kwargs["project"])) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)

    config = TrainConfig(
        data=write_dataset(tmp_path / "data"),
        output=tmp_path / "run",
        max_steps=3,
        max_seq_len=128,
        save_every=0,
        report_to=["wandb"],
    )
    start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_gemma3_dir))
    assert calls[0] == ("init", "finch") and calls[-1] == "finish"
    steps = [c for c in calls[1:-1]]
    assert [step for step, _ in steps] == [1, 2, 3]
    assert all(m["loss"] > 0 and m["tokens_per_s"] > 0 for _, m in steps) and "eval_loss" in steps[-1][1]
