"""--launcher accelerated: 2 gloo processes make the same loss curve as 1 process with the same effective batch."""

from __future__ import annotations

import pytest
import yaml

from finch.train import TrainConfig
from finch.train.distributed import CONFIGS_DIR
from finch.train.runs import start_run
from tests.train.datasets import write_dataset

COMMON = {"max_steps": 4, "lr": 1e-2, "batch_size": 2, "max_seq_len": 128, "lora_dropout": 0.0, "eval_every": 2}


def test_two_processes_match_one_process(tmp_path, tiny_llama_dir):
    data = write_dataset(tmp_path / "data")

    def run(name, **settings):
        config = TrainConfig(data=data, output=tmp_path / name, save_every=0, **COMMON, **settings)
        return start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_llama_dir))

    one = run("one", grad_accum=2)  # 2 micro-batches per step in one process...
    two = run("two", launcher="accelerated", processes=2, grad_accum=1)  # ...or one in each of 2 processes
    assert [r["step"] for r in two.log] == [1, 2, 3, 4]
    for a, b in zip(one.log, two.log, strict=True):
        assert a["tokens"] == b["tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    assert two.eval_loss == pytest.approx(one.eval_loss, rel=1e-3)
    assert one.log[-1]["loss"] < one.log[0]["loss"]  # the curve moved, so matching it means something
    assert (tmp_path / "two" / "adapter_model.safetensors").is_file()
    assert yaml.safe_load((tmp_path / "two" / "run.yaml").read_text())["status"] == "finished"
    assert sorted(p.name for p in (tmp_path / "two").glob("worker-*.log")) == ["worker-0.log", "worker-1.log"]


def test_accelerate_configs_ship_as_data():
    names = {p.name: yaml.safe_load(p.read_text()) for p in CONFIGS_DIR.glob("*.yaml")}
    assert {c["distributed_type"] for c in names.values()} == {"MULTI_GPU", "FSDP", "DEEPSPEED"}
