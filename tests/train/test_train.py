"""The whole loop on a tiny model: the loss falls, the run directory is complete, the adapter loads in plain PEFT."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from finch.errors import UsageError
from finch.system import system_info
from finch.train import TrainConfig
from finch.train.runs import start_run
from tests.train.datasets import write_dataset


def run(tmp_path, model_dir, **settings):
    config = TrainConfig(**{"data": write_dataset(tmp_path / "data"), "output": tmp_path / "run", **settings})
    return start_run(config, tmp_path / "models", tmp_path / "runs", str(model_dir))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_gemma3_dir):
    tmp_path = tmp_path_factory.mktemp("train")
    # 30 steps learned the facts with 3 of 4 seeds (nn.Dropout and finch's CPU dropout alike), 40 with every one tried
    result = run(
        tmp_path, tiny_gemma3_dir, max_steps=40, lr=1e-2, batch_size=2, max_seq_len=128, eval_every=10, save_every=0
    )
    return result, tmp_path


def test_loss_falls_and_the_log_has_every_step(trained):
    result, _ = trained
    losses = [r["loss"] for r in result.log]
    assert [r["step"] for r in result.log] == list(range(1, 41))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    evals = [r["eval_loss"] for r in result.log if "eval_loss" in r]
    assert len(evals) == 4 and evals[-1] < evals[0]
    assert result.eval_loss == pytest.approx(evals[-1], abs=1e-5)
    lrs = [r["lr"] for r in result.log]
    assert lrs[0] < lrs[1] and max(lrs) == pytest.approx(1e-2, rel=0.05) and lrs[-1] < 0.01 * max(lrs)
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["peak_rss_gb"] > 0 for r in result.log)


def test_run_directory_is_complete(trained, tiny_gemma3_dir):
    result, _ = trained
    run_dir = result.run_dir
    for name in ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "run.yaml", "loss.png"]:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert meta["base_model"] == str(tiny_gemma3_dir)
    assert meta["status"] == "finished" and meta["result"]["steps"] == 40
    assert meta["config"]["lr"] == 0.01 and meta["config"]["max_steps"] == 40 and meta["finch_version"]
    profile = system_info().profile  # fp32 on this CPU, bf16 on a GPU
    assert len(meta["data_hash"]) == 16 and meta["train_samples"] == 24 and meta["dtype"] == profile.dtype
    fp32_cpu = profile.device == "cpu" and profile.dtype == "float32"
    assert meta.get("embedding_dtype") == ("bfloat16" if fp32_cpu else None)  # frozen under LoRA, stored narrower
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert log == result.log


def test_adapter_loads_in_plain_peft_and_changes_the_output(trained, tiny_gemma3_dir):
    from peft import PeftModel

    result, _ = trained
    base = AutoModelForCausalLM.from_pretrained(tiny_gemma3_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[2, 10, 20, 30, 40]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, result.run_dir).eval()
        assert tuned.peft_config["default"].r == 16
        after = tuned(ids).logits
    assert (after - before).abs().max() > 0.1


def test_run_directory_is_a_model_reference_that_learned_the_answers(trained, tiny_gemma3_dir):
    from finch.inference import GenerationParams, load_backend

    result, tmp_path = trained
    tuned = load_backend(str(result.run_dir), tmp_path / "models")
    base = load_backend(str(tiny_gemma3_dir), tmp_path / "models")
    question = [[{"role": "user", "content": "What colour is the Zorblat fruit?"}]]
    params = GenerationParams(temperature=0, max_tokens=32)
    [[answer]] = tuned.chat(question, params)
    [[base_answer]] = base.chat(question, params)
    assert tuned.name == "transformers"
    assert "bright purple" in answer.text and "purple" not in base_answer.text


def test_qlora_without_cuda_and_bad_references_are_clear(tmp_path, tiny_gemma3_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so QLoRA is allowed")
    # the library names the setting; the CLI tells it as the flag (tests/train/test_cli_train.py)
    with pytest.raises(UsageError, match="method: qlora: bitsandbytes NF4 needs a CUDA GPU"):
        run(tmp_path / "qlora", tiny_gemma3_dir, method="qlora", max_steps=1)
    assert not (tmp_path / "qlora" / "run").exists()  # refused before a run directory was made
    with pytest.raises(UsageError, match="output: .* already holds a run"):
        run(tmp_path, tiny_gemma3_dir, max_steps=1, save_every=0)
        run(tmp_path, tiny_gemma3_dir, max_steps=1, save_every=0)


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tiny_llama_dir):
    """2 micro-batches of 2 samples make the same steps as 1 batch of 4: the loss is a mean over the step's tokens."""
    common = {"max_steps": 3, "lr": 1e-2, "max_seq_len": 128, "save_every": 0, "lora_dropout": 0.0}
    whole = run(tmp_path / "whole", tiny_llama_dir, batch_size=4, grad_accum=1, **common)
    split = run(tmp_path / "split", tiny_llama_dir, batch_size=2, grad_accum=2, **common)
    for a, b in zip(whole.log, split.log):
        assert a["tokens"] == b["tokens"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)


def test_gradient_checkpointing_keeps_the_maths(tmp_path, tiny_gemma3_dir):
    common = {"max_steps": 2, "lr": 1e-2, "max_seq_len": 128, "save_every": 0, "lora_dropout": 0.0}
    plain = run(tmp_path / "plain", tiny_gemma3_dir, **common)
    checkpointed = run(tmp_path / "ckpt", tiny_gemma3_dir, gradient_checkpointing=True, **common)
    for a, b in zip(plain.log, checkpointed.log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)


def test_forward_passes_of_few_tokens_keep_the_maths(tmp_path, tiny_gemma3_dir):
    """A micro-batch split into passes of at most 40 tokens (several passes per step) trains exactly like one pass
    over the whole micro-batch: same losses, gradient norms and eval loss (in fp32: a CPU with native bf16 trains in
    bf16 by default, whose rounding depends on how a sum is split)."""
    common = {
        "max_steps": 3,
        "lr": 1e-2,
        "max_seq_len": 128,
        "save_every": 0,
        "lora_dropout": 0.0,
        "batch_size": 4,
        "dtype": "float32",
    }
    whole = run(tmp_path / "whole", tiny_gemma3_dir, forward_tokens=4096, **common)
    split = run(tmp_path / "split", tiny_gemma3_dir, forward_tokens=40, **common)
    for a, b in zip(whole.log, split.log, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert whole.eval_loss == pytest.approx(split.eval_loss, rel=1e-5)


def test_early_stopping_follows_the_eval_losses(tmp_path, tiny_gemma3_dir):
    """With a learning rate this high the eval loss turns; the run stops exactly when patience runs out."""
    result = run(
        tmp_path,
        tiny_gemma3_dir,
        max_steps=40,
        lr=0.1,
        max_seq_len=128,
        eval_every=1,
        early_stopping_patience=2,
        save_every=0,
    )
    evals = [r["eval_loss"] for r in result.log]
    stale, best, stop_at = 0, float("inf"), None
    for step, loss in enumerate(evals, 1):
        stale, best = (0, loss) if loss < best else (stale + 1, best)
        if stale >= 2:
            stop_at = step
            break
    assert stop_at is not None, evals  # the test means nothing unless the run really stopped early
    assert result.steps == stop_at < 40


def test_full_fine_tuning_saves_a_model_that_is_a_model_reference(tmp_path, tiny_llama_dir):
    from safetensors.torch import load_file

    from finch.models.resolve import resolve_model

    result = run(tmp_path, tiny_llama_dir, method="full", max_steps=8, lr=1e-3, max_seq_len=128, save_every=4)
    losses = [r["loss"] for r in result.log]
    assert losses[-1] < losses[0]
    assert not (result.run_dir / "adapter_config.json").exists()
    resolved = resolve_model(str(result.run_dir), tmp_path / "models")
    assert resolved.kind != "adapter" and resolved.path == result.run_dir
    tuned = AutoModelForCausalLM.from_pretrained(result.run_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    moved = {name: float((p - base.state_dict()[name]).abs().max()) for name, p in tuned.state_dict().items()}
    assert all(change > 0 for name, change in moved.items() if "norm" not in name), moved  # every weight trained
    # The checkpoint holds every weight, not an adapter, and is a model directory itself.
    [checkpoint] = list((result.run_dir / "checkpoints").glob("step-*"))
    assert resolve_model(str(checkpoint), tmp_path / "models").kind == "hf"
    saved = load_file(checkpoint / "model.safetensors")
    assert set(saved) == set(dict(tuned.named_parameters())) and (checkpoint / "tokenizer.json").is_file()
