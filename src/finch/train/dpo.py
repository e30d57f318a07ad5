"""DPO on preference pairs with a LoRA adapter, through TRL's DPOTrainer (the one loop finch does not own).

Rows are `{"prompt", "chosen", "rejected"}`: strings (a one-turn chat: the prompt is the user's message, the
answers the assistant's) or, as in TRL's conversational format, lists of messages. The reference model is the base
itself, with the adapter switched off, so DPO costs one model in memory.
"""

from __future__ import annotations

import json
import time
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


# finch's own loop has these; TRL's DPO loop does not, so a run that sets them is refused rather than run without them
SFT_ONLY = ("loss_chunk_tokens", "forward_tokens")


def check_dpo_settings(config: TrainConfig) -> None:
    """Every setting a DPO run is given either changes the run or is refused here, by its config key."""
    defaults = TrainConfig.model_fields
    for key in SFT_ONLY:
        if getattr(config, key) != defaults[key].default:
            raise UsageError(f"{key}: a setting of finch's own SFT loop; DPO runs TRL's loop, which has none. Drop it.")


def latest_trl_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    return found[-1] if found else None


def train_dpo(
    config: TrainConfig,
    hf_dir: Path,
    base_model: str,
    run_dir: Path,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] = lambda message: None,
) -> TrainResult:
    """DPO with TRL. finch's settings map onto DPOConfig: eval_every and save_every become TRL's eval and checkpoint
    steps (checkpoints in run_dir/checkpoints, so --resume continues the last one), early stopping and the best
    adapter (run_dir/best) work as in finch's loop, and tokens/s counts the tokens TRL reports it trained on."""
    try:
        import trl
    except ImportError:
        raise FinchError("--method dpo needs TRL: pip install 'finch[bench]' (or pip install trl).") from None
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from finch.system import system_info
    from finch.train.loop import save_best

    check_dpo_settings(config)
    assert config.data is not None
    train_file, test_file = data_files(config.data)
    train_rows = read_preferences(train_file)
    test_rows = read_preferences(test_file) if test_file else None
    profile = system_info().profile
    dtype = profile.dtype if config.dtype == "auto" else config.dtype
    checkpoint = latest_trl_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise UsageError(f"--resume {run_dir}: no checkpoint there yet; start the run again without --resume.")

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if not tokenizer.chat_template:  # base models: their family's turn format, as for SFT
        model_type = AutoConfig.from_pretrained(hf_dir).model_type
        tokenizer.chat_template = chat_renderer(tokenizer, model_type).template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype))
    files = RunFiles(run_dir)
    if checkpoint is None:
        files.start_log()
    else:
        saved = files.read_run_yaml()
        if saved.get("data_hash") != file_hash(train_file, test_file):
            raise UsageError(f"--resume {run_dir}: the data changed since the run started; resume needs the same data.")
        files.truncate_log(int(checkpoint.name.rsplit("-", 1)[-1]))  # steps after it run again
        on_message(f"resuming {run_dir} from {checkpoint.name}")
    log: list[dict] = files.read_log()
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
    evaluating = bool(test_rows and config.eval_every)
    clock = {"seen": log[-1].get("tokens_seen", 0) if log else 0, "trained": 0, "seconds": 0.0, "last": 0.0}
    best: dict = {"loss": None, "evals_without_improvement": 0}
    pending: list[dict] = []  # a step record that waits for its eval loss

    def emit(record: dict) -> None:
        log.append(record)
        files.append_log(record)
        if on_step:
            on_step({**record, "total_steps": total[0]})

    total = [0]

    class FollowRun(TrainerCallback):
        """Step records for log.jsonl and progress, as finch's loop writes them (eval_loss in the record of the step
        it was measured at); the best adapter and early stopping as in finch's loop."""

        def on_train_begin(self, args, state, control, **kwargs):
            clock["last"], total[0] = time.monotonic(), state.max_steps

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            now = time.monotonic()
            seconds, clock["last"] = now - clock["last"], now
            seen = int(logs.get("num_tokens", clock["seen"]))
            tokens, clock["seen"] = seen - clock["seen"], seen
            clock["trained"] += tokens
            clock["seconds"] += seconds
            record = {
                "step": state.global_step,
                "loss": round(logs["loss"], 6),
                "lr": logs.get("learning_rate"),
                "tokens": tokens,
                "tokens_seen": seen,
                "tokens_per_s": round(tokens / max(seconds, 1e-9), 2),
            }
            for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
                if key in logs:
                    record[key.replace("/", "_")] = round(logs[key], 6)
            record["peak_rss_gb"] = round(peak_rss_gb(), 3)
            due = evaluating and state.global_step % config.eval_every == 0
            if due or (test_rows and state.global_step >= state.max_steps):
                pending.append(record)  # TRL evaluates after logging the step (or finch does, after the last)
            else:
                emit(record)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            if loss is None:
                return
            if pending:
                emit({**pending.pop(), "eval_loss": round(loss, 6)})
            if best["loss"] is None or loss < best["loss"]:
                best["loss"], best["evals_without_improvement"] = loss, 0
                save_best(kwargs["model"], run_dir / "best")
            else:
                best["evals_without_improvement"] += 1
            patience = config.early_stopping_patience
            if patience and best["evals_without_improvement"] >= patience:
                on_message(f"early stop at step {state.global_step}: eval loss did not improve in {patience} evals")
                control.should_training_stop = True

    args = trl.DPOConfig(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        activation_checkpointing=config.gradient_checkpointing,
        max_length=config.max_seq_len,
        beta=config.dpo_beta,
        bf16=dtype == "bfloat16",
        fp16=dtype == "float16",
        use_cpu=profile.device == "cpu",
        report_to="none",  # finch's trackers (report_to) get every step record through on_step
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.eval_every or None,
        save_strategy="steps" if config.save_every else "no",
        save_steps=config.save_every or 500,
        save_total_limit=1,  # --resume needs the last one only
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
        callbacks=[FollowRun()],
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    eval_loss = trainer.evaluate()["eval_loss"] if test_rows else None
    while pending:  # stopped early after a step TRL did not evaluate
        emit(pending.pop())
    trainer.model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    plot_loss(log, run_dir / "loss.png")
    result = TrainResult(
        run_dir=run_dir,
        steps=trainer.state.global_step,
        train_loss=log[-1]["loss"] if log else None,
        eval_loss=eval_loss,
        tokens_per_s=round(clock["trained"] / max(clock["seconds"], 1e-9), 2),
        peak_rss_gb=round(peak_rss_gb(), 3),
        log=log,
        best_eval_loss=best["loss"],
    )
    outcome = {
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": eval_loss,
        "tokens_per_s": result.tokens_per_s,
        "best_eval_loss": result.best_eval_loss,
    }
    write_run_yaml(files, config, lineage, status="finished", result=outcome)
    return result
