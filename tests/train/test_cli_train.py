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
        run_finch("train", "--data", str(tmp_path), "--method", "qlora"), 2, "--method qlora", "needs a CUDA GPU"
    )


def test_a_training_pipeline_finch_does_not_have_is_refused_naming_those_it_has(finch_home, tmp_path):
    result = run_finch("train", "--data", str(tmp_path), "--pipeline", "simple")
    assert_one_line_error(result, 2, "pipeline", "'auto', 'full' or 'accelerated'")


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
