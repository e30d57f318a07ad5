"""The optimizer choices: the optimiser stepped inside the backward pass gives the weights an ordinary step gives,
bitsandbytes' 8-bit AdamW trains with one byte a moment, and settings that contradict stepping in the backward pass
are one-line errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from finch.train import TrainConfig
from finch.train.loop import make_optimizer
from finch.train.runs import start_run
from tests.conftest import assert_one_line_error, run_finch
from tests.train.datasets import write_dataset


def run(tmp_path, model_dir, name: str, **settings):
    config = TrainConfig(data=write_dataset(tmp_path / "data"), output=tmp_path / name, **settings)
    return start_run(config, tmp_path / "models", tmp_path / "runs", str(model_dir))


def test_stepping_in_the_backward_pass_gives_the_weights_of_an_ordinary_step(tmp_path, tiny_llama_dir):
    """Full fine-tuning, 4 steps, fp32: the same data, the same learning rates; the ordinary run is not clipped
    (a huge max_grad_norm), since stepping in the backward pass cannot clip."""
    common = {"method": "full", "max_steps": 4, "lr": 1e-3, "batch_size": 2, "max_seq_len": 128, "save_every": 0}
    common |= {"dtype": "float32"}
    ordinary = run(tmp_path, tiny_llama_dir, "ordinary", max_grad_norm=1e9, **common)
    in_backward = run(tmp_path, tiny_llama_dir, "in-backward", optimizer_in_backward=True, **common)
    for a, b in zip(ordinary.log, in_backward.log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    first = AutoModelForCausalLM.from_pretrained(ordinary.run_dir, dtype=torch.float32).state_dict()
    second = AutoModelForCausalLM.from_pretrained(in_backward.run_dir, dtype=torch.float32).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).state_dict()
    moved = sum(float((first[n] - base[n]).pow(2).sum()) for n in first) ** 0.5
    apart = sum(float((first[n] - second[n]).pow(2).sum()) for n in first) ** 0.5
    assert moved > 1e-2  # the runs trained
    assert apart < 1e-3 * moved


def test_eight_bit_adamw_keeps_one_byte_a_moment_and_trains(tmp_path, tiny_gemma3_dir):
    import bitsandbytes

    config = TrainConfig(data=tmp_path, optimizer="adamw8bit", lr=1e-3)
    weight = torch.nn.Parameter(torch.randn(512, 64))
    optimizer = make_optimizer(config, [weight])
    weight.grad = torch.randn_like(weight)
    optimizer.step()
    assert isinstance(optimizer, bitsandbytes.optim.AdamW8bit)
    assert (
        optimizer.state[weight]["state1"].dtype == torch.uint8
        and optimizer.state[weight]["state2"].dtype == torch.uint8
    )

    result = run(
        tmp_path, tiny_gemma3_dir, "run", optimizer="adamw8bit", max_steps=20, lr=1e-2, batch_size=2, max_seq_len=128
    )
    losses = [r["loss"] for r in result.log]
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--grad-accum", "2"], "grad_accum 1"),
        (["--max-grad-norm", "0.5"], "not clipped"),
        (["--forward-tokens", "256"], "one forward pass"),
        (["--method", "dpo"], "trl"),
    ],
)
def test_what_contradicts_stepping_in_the_backward_pass_is_one_line(finch_home, tmp_path, flags, fragment):
    data = write_dataset(tmp_path / "data")
    result = run_finch("train", "--data", str(data), "--optimizer-in-backward", *flags)
    assert_one_line_error(result, 2, "optimizer-in-backward", fragment)


def test_dpo_passes_the_optimizer_to_trl(tmp_path):
    from finch.train.dpo import dpo_args

    config = TrainConfig(data=tmp_path, method="dpo", optimizer="adamw8bit", lr=1e-4)
    assert dpo_args(config, tmp_path, "float32", "cpu", False).optim == "adamw_bnb_8bit"
