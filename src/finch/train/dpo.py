"""DPO on preference pairs with a LoRA adapter, through TRL's DPOTrainer (the one loop finch does not own).

Rows are `{"prompt", "chosen", "rejected"}`: strings (a one-turn chat: the prompt is the user's message, the
answers the assistant's) or, as in TRL's conversational format, lists of messages. The reference model is the base
itself, with the adapter switched off, so DPO costs one model in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from finch.errors import FinchError, UsageError
from finch.train.config import TrainConfig, lora_config
from finch.train.data import ROLES, chat_renderer, data_files, file_hash
from finch.train.loop import TrainResult, peak_rss_gb
from finch.train.run_dir import RunFiles, plot_loss, write_run_yaml

KEYS = ("prompt", "chosen", "rejected")


def _messages(value, role: str, where: str) -> list[dict[str, str]]:
    if isinstance(value, str) and value.strip():
        return [{"role": role, "content": value}]
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in value)
    )
    if not ok:
        raise UsageError(f"{where}: must be a non-empty string or a list of {{role, content}} messages.")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def read_preferences(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{number}: invalid JSON ({e.msg}); each line must be one JSON object.") from None
        if not isinstance(row, dict) or any(key not in row for key in KEYS):
            raise UsageError(f'{path}:{number}: a preference row is {{"prompt", "chosen", "rejected"}}.')
        rows.append(
            {
                "prompt": _messages(row["prompt"], "user", f"{path}:{number}: prompt"),
                "chosen": _messages(row["chosen"], "assistant", f"{path}:{number}: chosen"),
                "rejected": _messages(row["rejected"], "assistant", f"{path}:{number}: rejected"),
            }
        )
    if not rows:
        raise UsageError(f'{path}: no rows; DPO needs {{"prompt", "chosen", "rejected"}} lines.')
    return rows


def train_dpo(
    config: TrainConfig,
    hf_dir: Path,
    base_model: str,
    run_dir: Path,
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    try:
        import trl
    except ImportError:
        raise FinchError("--method dpo needs TRL: pip install 'finch[bench]' (or pip install trl).") from None
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from finch.system import system_info

    assert config.data is not None
    train_file, test_file = data_files(config.data)
    train_rows = read_preferences(train_file)
    test_rows = read_preferences(test_file) if test_file else None
    profile = system_info().profile
    dtype = profile.dtype if config.dtype == "auto" else config.dtype

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if not tokenizer.chat_template:  # base models: their family's turn format, as for SFT
        model_type = AutoConfig.from_pretrained(hf_dir).model_type
        tokenizer.chat_template = chat_renderer(tokenizer, model_type).template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype))
    files = RunFiles(run_dir)
    files.start_log()
    lineage = {
        "base_model": base_model,
        "base_model_path": str(hf_dir),
        "data_hash": file_hash(train_file, test_file),
        "train_samples": len(train_rows),
        "test_samples": len(test_rows) if test_rows else 0,
        "dtype": dtype,
        "device": profile.device,
    }
    write_run_yaml(files, config, lineage, status="running")
    log: list[dict] = []

    class LogSteps(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                record = {"step": state.global_step, "loss": round(logs["loss"], 6), "lr": logs.get("learning_rate")}
                for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
                    if key in logs:
                        record[key.replace("/", "_")] = round(logs[key], 6)
                record["peak_rss_gb"] = round(peak_rss_gb(), 3)
                log.append(record)
                files.append_log(record)
                if on_step:
                    on_step({**record, "tokens_per_s": 0.0, "total_steps": state.max_steps})

    args = trl.DPOConfig(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the steps
        max_grad_norm=config.max_grad_norm,
        max_length=config.max_seq_len,
        beta=config.dpo_beta,
        bf16=dtype == "bfloat16",
        use_cpu=profile.device == "cpu",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=config.seed,
        disable_tqdm=True,
    )
    trainer = trl.DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(test_rows) if test_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=[LogSteps()],
    )
    trainer.train()
    eval_loss = trainer.evaluate()["eval_loss"] if test_rows else None
    trainer.model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    plot_loss(log, run_dir / "loss.png")
    result = TrainResult(
        run_dir=run_dir,
        steps=trainer.state.global_step,
        train_loss=log[-1]["loss"] if log else None,
        eval_loss=eval_loss,
        tokens_per_s=0.0,
        peak_rss_gb=round(peak_rss_gb(), 3),
        log=log,
    )
    outcome = {"steps": result.steps, "train_loss": result.train_loss, "eval_loss": eval_loss}
    write_run_yaml(files, config, lineage, status="finished", result=outcome)
    return result
