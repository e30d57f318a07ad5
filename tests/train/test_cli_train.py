"""`finch train` as a user runs it: one-line errors for bad input, a run directory for good input."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import assert_one_line_error, run_finch
from tests.train.datasets import write_dataset, write_jsonl


def test_missing_data_is_one_line(finch_home, tmp_path):
    assert_one_line_error(run_finch("train", "--data", str(tmp_path / "nope")), 2, "--data", "no such file")


def test_qlora_on_a_machine_without_cuda_is_one_line(finch_home, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so QLoRA is allowed")
    assert_one_line_error(
        run_finch("train", "--data", str(tmp_path), "--method", "qlora"), 2, "--method: qlora", "needs a CUDA GPU"
    )


def test_a_training_launcher_finch_does_not_have_is_refused_naming_those_it_has(finch_home, tmp_path):
    result = run_finch("train", "--data", str(tmp_path), "--launcher", "simple")
    assert_one_line_error(result, 2, "--launcher", "'auto', 'single' or 'accelerated'")


def test_the_old_pipeline_spelling_still_trains_with_one_warning_line(finch_home, tmp_path, tiny_gemma3_dir):
    data = write_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    flags = ["--model", str(tiny_gemma3_dir), "--pipeline", "full", "--max-steps", "1", "-o", str(run_dir)]
    result = run_finch("train", "--data", str(data), *flags)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "finch: warning: training's pipeline full is now launcher single; the old spelling goes in the next release"
    ]
    assert yaml.safe_load((run_dir / "run.yaml").read_text())["config"]["launcher"] == "single"


def test_bad_row_is_one_line(finch_home, tmp_path, tiny_gemma3_dir):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "no answer"}]}])
    result = run_finch("train", "--data", str(path), "--model", str(tiny_gemma3_dir))
    assert_one_line_error(result, 2, "bad.jsonl:1", "no assistant message")


def test_train_from_config_file_with_flags_winning(finch_home, tmp_path, tiny_gemma3_dir):
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": str(write_dataset(tmp_path / "data")), "max_steps": 50, "lr": 0.005, "max_seq_len": 128}
        )
    )
    run_dir = tmp_path / "run"
    result = run_finch(
        "train", "--config", str(config), "--model", str(tiny_gemma3_dir), "--max-steps", "3", "-o", str(run_dir)
    )
    assert result.returncode == 0, result.stderr
    assert "trained 3 steps" in result.stdout and "max_steps: 3" in result.stderr and "lr: 0.005" in result.stderr
    meta = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert meta["config"]["max_steps"] == 3 and meta["config"]["lr"] == 0.005 and meta["status"] == "finished"
    assert (run_dir / "adapter_model.safetensors").is_file()
    # A finished run cannot be resumed; the error says so.
    assert_one_line_error(run_finch("train", "--resume", str(run_dir)), 2, "already finished")


def test_a_bad_value_is_told_as_the_flag_or_the_config_key_that_set_it(finch_home, tmp_path):
    missing = tmp_path / "missing"
    assert_one_line_error(run_finch("train", "--data", str(missing)), 2, f"--data: {missing}: no such file")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"data": str(missing)}))
    assert_one_line_error(run_finch("train", "--config", str(config)), 2, f"{config}: data: {missing}: no such file")
