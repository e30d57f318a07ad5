"""Exact resume: a run killed with SIGKILL and resumed ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from finch.train import TrainConfig
from finch.train.checkpoint import latest_checkpoint
from finch.train.runs import start_run
from tests.conftest import REPO
from tests.train.datasets import write_dataset

SETTINGS = {"max_steps": 12, "lr": 5e-3, "batch_size": 2, "max_seq_len": 128, "save_every": 3, "eval_every": 4}

# Trains in a child process and, once step 7 is logged (a checkpoint exists at step 6), parks so the test can kill it.
CHILD = """
import sys, time
from pathlib import Path
from finch.train import TrainConfig
from finch.train.runs import start_run

data, run_dir, model, marker, settings = sys.argv[1:6]
def on_step(record):
    if record["step"] == 7:
        Path(marker).write_text("7")
        time.sleep(600)
config = TrainConfig(data=data, output=run_dir, **__import__("json").loads(settings))
start_run(config, Path(run_dir).parent / "models", Path(run_dir).parent / "runs", model, on_step=on_step)
"""


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path, tiny_gemma3_dir):
    data = write_dataset(tmp_path / "data")
    reference = start_run(
        TrainConfig(data=data, output=tmp_path / "reference", **SETTINGS),
        tmp_path / "models",
        tmp_path / "runs",
        str(tiny_gemma3_dir),
    )

    run_dir, marker = tmp_path / "killed", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    args = [str(data), str(run_dir), str(tiny_gemma3_dir), str(marker), json.dumps(SETTINGS)]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert child.poll() is None, "the child training process died before step 7"
            assert time.monotonic() < deadline, "the child never reached step 7"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert latest_checkpoint(run_dir).name == "step-0000006"
    logged = [json.loads(line)["step"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 8))  # step 7 was logged but not checkpointed: it must run again

    resumed = start_run(TrainConfig(), tmp_path / "models", tmp_path / "runs", "unused", resume=str(run_dir))
    assert resumed.steps == reference.steps == 12
    assert [r["step"] for r in resumed.log] == list(range(1, 13))
    assert resumed.train_loss == pytest.approx(reference.train_loss, rel=0.01)
    assert resumed.eval_loss == pytest.approx(reference.eval_loss, rel=0.01)
    # Every step after the checkpoint replays the reference run's loss, not just the last one.
    for mine, theirs in zip(resumed.log[6:], reference.log[6:]):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=0.01), mine["step"]


def test_resume_needs_a_checkpoint(tmp_path, tiny_gemma3_dir):
    from finch.errors import UsageError

    data = write_dataset(tmp_path / "data")
    config = TrainConfig(data=data, output=tmp_path / "run", max_steps=2, save_every=0, max_seq_len=128)
    start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_gemma3_dir))
    run_yaml = tmp_path / "run" / "run.yaml"
    run_yaml.write_text(run_yaml.read_text().replace("status: finished", "status: running"))
    with pytest.raises(UsageError, match="no checkpoint there yet"):
        start_run(TrainConfig(), tmp_path / "models", tmp_path / "runs", "unused", resume=str(tmp_path / "run"))
