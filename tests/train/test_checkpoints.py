"""Every checkpoint is a model: plain PEFT loads it, finch's references take it, `evaluate compare` scores it."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from finch.inference import load_backend
from finch.train import TrainConfig
from finch.train.checkpoint import disk_use
from finch.train.runs import start_run
from tests.conftest import run_finch
from tests.train.datasets import write_dataset

STEPS = [2, 4, 6, 8]


@pytest.fixture(scope="module")
def run_with_checkpoints(tmp_path_factory, tiny_gemma3_dir):
    tmp_path = tmp_path_factory.mktemp("checkpoints")
    data = write_dataset(tmp_path / "data")
    settings = {"max_steps": 8, "lr": 1e-2, "batch_size": 2, "max_seq_len": 128, "save_every": 0}
    config = TrainConfig(data=data, output=tmp_path / "run", checkpoint_steps=STEPS, keep_checkpoints="all", **settings)
    return start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_gemma3_dir)), data


def checkpoint(run_dir, step: int):
    return run_dir / "checkpoints" / f"step-{step:07d}"


def plain_peft_logits(base_dir, adapter, ids) -> torch.Tensor:
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter).eval()(input_ids=ids).logits.float()


@torch.no_grad()
def test_a_checkpoint_loads_in_plain_peft_with_the_logits_finch_gets(run_with_checkpoints, tiny_gemma3_dir, tmp_path):
    result, _ = run_with_checkpoints
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == [f"step-{s:07d}" for s in STEPS]
    ids = torch.tensor([[2, 10, 20, 30, 40, 50]])
    plain = plain_peft_logits(tiny_gemma3_dir, checkpoint(result.run_dir, 4), ids)
    ref = str(checkpoint(result.run_dir, 4))
    with load_backend(ref, tmp_path / "models", backend="transformers", dtype="float32") as finch:
        ours = finch.model(input_ids=ids).logits.float()
    torch.testing.assert_close(ours, plain)
    # the checkpoints differ from each other, and the last one is the run's adapter
    assert (plain_peft_logits(tiny_gemma3_dir, checkpoint(result.run_dir, 2), ids) - plain).abs().max() > 1e-3
    last = plain_peft_logits(tiny_gemma3_dir, checkpoint(result.run_dir, 8), ids)
    torch.testing.assert_close(last, plain_peft_logits(tiny_gemma3_dir, result.run_dir, ids))
    count, size = disk_use(result.run_dir)
    assert count == 4 and size > 4 * (checkpoint(result.run_dir, 2) / "adapter_model.safetensors").stat().st_size


def test_evaluate_compare_scores_each_checkpoint_against_its_step(run_with_checkpoints, finch_home, tmp_path):
    result, data = run_with_checkpoints
    refs = [str(checkpoint(result.run_dir, s)) for s in STEPS]
    out = tmp_path / "compare"
    flags = ["--benchmark", "metrics", "--data", str(data), "--limit", "2", "--max-tokens", "8", "--output", str(out)]
    done = run_finch("evaluate", "compare", *refs, *flags)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["steps"].values()) == STEPS
    assert all("rouge_l" in scores for scores in report["results"].values())
    assert (out / "metrics-vs-steps.png").is_file()


def test_only_the_newest_checkpoints_are_kept_unless_all(tmp_path, tiny_gemma3_dir):
    settings = {"max_steps": 7, "batch_size": 2, "max_seq_len": 128, "save_every": 2, "keep_checkpoints": 2}
    config = TrainConfig(data=write_dataset(tmp_path / "data"), output=tmp_path / "run", **settings)
    result = start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_gemma3_dir))
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == ["step-0000004", "step-0000006"]
