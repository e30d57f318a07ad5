"""finch study hparams on a tiny model: pruned trials recorded as pruned, a kill -9 mid-search followed by the same
command runs only the trials still owed, and the best train.yaml trains to the loss the search reported."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import yaml

from tests.conftest import REPO, run_finch
from tests.train.datasets import write_dataset


def read_trials(folder) -> list[dict]:
    with open(folder / "trials.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_search_prunes_survives_a_kill_and_its_best_settings_train_to_the_reported_loss(
    finch_home, tmp_path, tiny_gemma3_dir
):
    data = write_dataset(tmp_path / "data")
    train_yaml = tmp_path / "train.yaml"
    train_yaml.write_text(yaml.safe_dump({"max_steps": 8, "batch_size": 2, "max_seq_len": 128, "save_every": 0}))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"lr": {"low": 1e-5, "high": 5e-2, "log": True}, "lora_rank": [4, 8]}))
    out = tmp_path / "study"
    settings = {"--train-config": train_yaml, "--space": space, "--trials": 8, "--output": out}
    args = ["study", "hparams", "--data", str(data), "--model", str(tiny_gemma3_dir)]
    args += [str(part) for flag, value in settings.items() for part in (flag, value)]

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}
    first = subprocess.Popen([sys.executable, "-m", "finch.cli.main", *args], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (out / "trials" / "trial-003").exists():  # three trials finished, the fourth under way
        assert first.poll() is None, first.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (out / "trials.csv").exists()  # it never got to the end

    second = run_finch(*args)
    assert second.returncode == 0, second.stderr
    assert "continuing" in second.stderr and "3 of 8 trials already finished" in second.stderr
    assert "min a trial (finch plan" in second.stderr and "for the 5 trials owed" in second.stderr  # ETA up front
    trials = read_trials(out)
    states = [t["state"] for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 8
    assert states[3] == "FAIL" and states.count("FAIL") == 1  # the killed trial, run again with its settings
    assert trials[4]["lr"] == trials[3]["lr"] and trials[4]["lora_rank"] == trials[3]["lora_rank"]
    assert len(list((out / "trials").iterdir())) == 9  # 3 before the kill, the killed one, and 5 after: no repeats
    assert states.count("PRUNED") >= 1
    for pruned in (t for t in trials if t["state"] == "PRUNED"):
        assert int(pruned["steps"]) < 8  # stopped early

    best_yaml = out / "best.yaml"
    best = yaml.safe_load(best_yaml.read_text())
    reported = min(float(t["eval_loss"]) for t in trials if t["state"] == "COMPLETE")
    retrain = run_finch("train", "--config", str(best_yaml), "--output", str(tmp_path / "retrain"))
    assert retrain.returncode == 0, retrain.stderr
    result = yaml.safe_load((tmp_path / "retrain" / "run.yaml").read_text())["result"]
    assert abs(result["eval_loss"] - reported) <= 0.01 * reported
    assert best["lr"] == float(next(t["lr"] for t in trials if float(t["eval_loss"] or "inf") == reported))
    for plot in ("history.png", "importances.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def test_a_space_naming_a_setting_that_cannot_be_searched_is_one_line(finch_home, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"seed": [1, 2]}))
    result = run_finch("study", "hparams", "--data", str(write_dataset(tmp_path / "d")), "--space", str(space))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "seed: not a searchable setting" in result.stderr


def test_the_same_settings_name_the_same_study_folder(tmp_path):
    from finch.study.hparams import HparamsConfig, settings_digest

    first = HparamsConfig(data=tmp_path / "a", trials=8)
    assert settings_digest(first, "output", "trials") == settings_digest(
        HparamsConfig(data=tmp_path / "a", trials=20), "output", "trials"
    )  # a larger budget continues the same search
    other_data = HparamsConfig(data=tmp_path / "b", trials=8)
    assert settings_digest(first, "output", "trials") != settings_digest(other_data, "output", "trials")
