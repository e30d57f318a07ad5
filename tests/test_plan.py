"""finch plan: shapes from config.json alone, the seeds' and torchtune's published memory figures, the CLI, and
finch train's pre-flight refusal (and --force)."""

from __future__ import annotations

import json

import pytest

from finch.models.info import count_parameters
from finch.plan.estimate import GB, Hardware, plan_memory
from finch.plan.shape import read_shape
from finch.train.config import TrainConfig
from tests.conftest import assert_one_line_error, run_finch
from tests.train.datasets import write_dataset

LLAMA_2_7B = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008}
LLAMA_2_7B |= {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32}
LLAMA_2_7B |= {"tie_word_embeddings": False}
LLAMA_3_8B = {**LLAMA_2_7B, "vocab_size": 128256, "intermediate_size": 14336, "num_key_value_heads": 8}


def shape_of(tmp_path, config: dict):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return read_shape(path)


@pytest.mark.parametrize("arch", ["gemma3", "llama"])
def test_the_parameter_count_from_config_json_is_the_weights(arch, request):
    folder = request.getfixturevalue(f"tiny_{arch}_dir")
    assert read_shape(folder / "config.json").params == count_parameters(folder)[0]


def test_published_7b_and_8b_sizes(tmp_path):
    assert abs(shape_of(tmp_path, LLAMA_2_7B).params - 6.738e9) < 0.01e9  # Llama 2 7B: 6,738,415,616
    assert abs(shape_of(tmp_path, LLAMA_3_8B).params - 8.030e9) < 0.01e9  # Llama 3 8B: 8,030,261,248
    nested = shape_of(tmp_path, {"model_type": "gemma3", "text_config": {**LLAMA_2_7B, "model_type": "gemma3_text"}})
    assert nested.hidden == 4096 and nested.model_type == "gemma3_text"


def gib(shape, gpu: bool = True, **settings) -> float:
    config = TrainConfig(data=None, **settings)
    hardware = Hardware("cuda" if gpu else "cpu")
    return plan_memory(shape, config, hardware, "bfloat16").total_gb


def test_seven_billion_parameters_in_the_seeds_orders_of_magnitude(tmp_path):
    """The infrastructure lab's calculator: full ~112 GB (AdamW, mixed precision), LoRA ~16-18 GB, QLoRA ~6-8 GB."""
    shape = shape_of(tmp_path, LLAMA_2_7B)
    moderate = {"batch_size": 1, "max_seq_len": 512, "gradient_checkpointing": True}
    assert 0.8 * 112 <= gib(shape, method="full", **moderate) * GB / 1e9 <= 1.2 * 112
    assert 16 * 0.85 <= gib(shape, method="lora", **moderate) * GB / 1e9 <= 18 * 1.15
    assert 6 * 0.85 <= gib(shape, method="qlora", **moderate) * GB / 1e9 <= 8 * 1.15


def test_torchtune_llama_3_1_8b_single_gpu_figures(tmp_path):
    """torchtune's README: batch 2, 2048 tokens, activation checkpointing: LoRA 16.2 GiB, QLoRA 7.4 GiB."""
    shape = shape_of(tmp_path, LLAMA_3_8B)
    targets = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    theirs = {"batch_size": 2, "max_seq_len": 2048, "gradient_checkpointing": True, "lora_rank": 8}
    assert gib(shape, method="lora", lora_targets=targets, **theirs) == pytest.approx(16.2, rel=0.2)
    assert gib(shape, method="qlora", lora_targets=targets, **theirs) == pytest.approx(7.4, rel=0.2)


def test_torchtune_full_fine_tune_with_paged_8bit_adamw_stepped_in_the_backward_pass(tmp_path):
    """torchtune's full single-device recipe for Llama 3.1 8B: bf16 weights, bitsandbytes' PagedAdamW8bit stepped
    inside the backward pass, batch 2, 2048 tokens, activation checkpointing: 18.9 GiB. Its paged state is not in
    the GPU total (it moves to CPU memory when the GPU runs short); plain AdamW would need six times as much."""
    shape = shape_of(tmp_path, LLAMA_3_8B)
    theirs = {"batch_size": 2, "max_seq_len": 2048, "gradient_checkpointing": True, "method": "full"}
    config = TrainConfig(data=None, optimizer="paged_adamw8bit", optimizer_in_backward=True, **theirs)
    plan = plan_memory(shape, config, Hardware("cuda"), "bfloat16")
    assert plan.total_gb == pytest.approx(18.9, rel=0.2)
    assert plan.parts["gradients"] < 1.1  # one weight's gradient alive (the 1 GiB embedding), not 15 GiB
    assert plan.paged_gb == pytest.approx(8.03e9 * 2 / GB, rel=0.05)  # two 1-byte moments a weight
    assert gib(shape, **theirs) > 6 * plan.total_gb


def test_advice_for_a_full_fine_tune_that_does_not_fit_names_the_optimisers(tmp_path):
    from finch.plan.train_plan import advise

    shape = shape_of(tmp_path, LLAMA_3_8B)
    config = TrainConfig(data=None, method="full", batch_size=2, max_seq_len=2048, gradient_checkpointing=True)
    advice = {a.change: a for a in advise(shape, config, Hardware("cuda", available_gb=24), "bfloat16")}
    assert advice["--optimizer paged_adamw8bit"].total_gb < gib(shape, **config.model_dump(exclude={"data"}))
    assert advice["--optimizer-in-backward"].total_gb < gib(shape, **config.model_dump(exclude={"data"}))
    accumulating = config.model_copy(update={"grad_accum": 2})
    assert "--optimizer-in-backward" not in {
        a.change for a in advise(shape, accumulating, Hardware("cuda"), "bfloat16")
    }


def test_plan_train_shows_the_parts_and_the_lora_table(finch_home, tmp_path, tiny_gemma3_dir):
    data = write_dataset(tmp_path / "data")
    result = run_finch("plan", "train", "--model", str(tiny_gemma3_dir), "--data", str(data), "--max-seq-len", "128")
    assert result.returncode == 0, result.stderr
    for part in ("weights", "optimiser state", "activations", "framework", "total", "all-linear", "fits", "tokens"):
        assert part in result.stdout, part
    gpu = ["--device", "cuda", "--gpu", "a100", "--memory-gb", "0.5", "--max-seq-len", "4096", "--method", "full"]
    on_gpus = run_finch("plan", "train", "--model", str(tiny_gemma3_dir), *gpu)
    assert on_gpus.returncode == 0, on_gpus.stderr
    assert "does not fit" in on_gpus.stdout and "advice: --gradient-checkpointing" in on_gpus.stdout
    assert "NVIDIA A100 datasheet" in on_gpus.stdout


def test_train_refuses_a_run_the_plan_says_will_not_fit_unless_forced(finch_home, tmp_path, tiny_gemma3_dir):
    data = write_dataset(tmp_path / "data", n_train=8, n_test=2)
    args = ["train", "--data", str(data), "--model", str(tiny_gemma3_dir), "--max-steps", "1", "--max-seq-len", "128"]
    env = {"FINCH_MAX_MEMORY_GB": "0.2"}
    refused = run_finch(*args, "--output", str(tmp_path / "refused"), env=env)
    assert_one_line_error(refused, 1, "the plan needs", "0.2 GB available", "--force")
    assert not (tmp_path / "refused").exists()
    forced = run_finch(*args, "--output", str(tmp_path / "forced"), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
