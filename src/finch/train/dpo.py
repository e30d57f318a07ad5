"""DPO on preference pairs with a LoRA adapter, through TRL's DPOTrainer (the one loop finch does not own).

Rows are `{"prompt", "chosen", "rejected"}`: strings (a one-turn chat: the prompt is the user's message, the
answers the assistant's) or, as in TRL's conversational format, lists of messages. The reference model is the base
itself, with the adapter switched off, so DPO costs one model in memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from finch.errors import FinchError, UsageError
from finch.train.config import DEFAULT_MAX_GRAD_NORM, TrainConfig, lora_config, optimizer_name
from finch.train.context import RunContext
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
SFT_ONLY = ("loss_chunk_tokens", "forward_tokens", "checkpoint_steps")


def check_dpo_settings(config: TrainConfig) -> None:
    """Every setting a DPO run is given either changes the run or is refused here, by its config key."""
    defaults = TrainConfig.model_fields
    for key in SFT_ONLY:
        if getattr(config, key) != defaults[key].get_default(call_default_factory=True):
            raise UsageError(f"{key}: a setting of finch's own SFT loop; DPO runs TRL's loop, which has none. Drop it.")


def latest_trl_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    return found[-1] if found else None


@dataclass
class RunFollower:
    """What finch's loop keeps of a run, kept for TRL's: step records for log.jsonl and progress (eval_loss in the
    record of the step it was measured at), tokens/s from TRL's token count, the best adapter, early stopping."""

    config: TrainConfig
    files: RunFiles
    log: list[dict]
    evaluating: bool  # TRL evaluates every eval_every steps
    evaluates_last: bool  # finch evaluates after the last step (there is a test split)
    on_step: Callable[[dict], None] | None
    on_message: Callable[[str], None]
    seen: int = 0  # tokens TRL had counted at the last record
    trained: int = 0  # tokens trained in this process
    seconds: float = 0.0
    last: float = 0.0
    total_steps: int = 0
    best_loss: float | None = None
    evals_without_improvement: int = 0
    pending: list[dict] = field(default_factory=list)  # a step record that waits for its eval loss

    def begin(self, total_steps: int) -> None:
        self.last, self.total_steps = time.monotonic(), total_steps
        self.seen = self.log[-1].get("tokens_seen", 0) if self.log else 0

    def emit(self, record: dict) -> None:
        self.log.append(record)
        self.files.append_log(record)
        if self.on_step:
            self.on_step({**record, "total_steps": self.total_steps})

    def logged(self, logs: dict, step: int) -> None:
        now = time.monotonic()
        seconds, self.last = now - self.last, now
        seen = int(logs.get("num_tokens", self.seen))
        tokens, self.seen = seen - self.seen, seen
        self.trained, self.seconds = self.trained + tokens, self.seconds + seconds
        record = {
            "step": step,
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
        due = self.evaluating and step % self.config.eval_every == 0
        if due or (self.evaluates_last and step >= self.total_steps):
            self.pending.append(record)  # TRL evaluates after logging the step (or finch does, after the last)
        else:
            self.emit(record)

    def evaluated(self, loss: float, step: int, model, run_dir: Path) -> bool:
        """Whether to stop early."""
        from finch.train.loop import save_best

        if self.pending:
            self.emit({**self.pending.pop(), "eval_loss": round(loss, 6)})
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss, self.evals_without_improvement = loss, 0
            save_best(model, run_dir / "best")
        else:
            self.evals_without_improvement += 1
        patience = self.config.early_stopping_patience
        if patience and self.evals_without_improvement >= patience:
            self.on_message(f"early stop at step {step}: eval loss did not improve in {patience} evals")
            return True
        return False

    def finish(self) -> None:
        while self.pending:  # stopped early after a step TRL did not evaluate
            self.emit(self.pending.pop())


def trl_callback(follower: RunFollower, run_dir: Path):
    """`follower` as TRL's trainer calls it."""
    from transformers import TrainerCallback

    class FollowRun(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            follower.begin(state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                follower.logged(logs, state.global_step)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            if loss is not None and follower.evaluated(loss, state.global_step, kwargs["model"], run_dir):
                control.should_training_stop = True

    return FollowRun()


TRL_OPTIMIZERS = {  # finch's optimizer names as transformers' TrainingArguments.optim spells them
    "adamw": "adamw_torch",
    "adamw8bit": "adamw_bnb_8bit",
    "paged_adamw": "paged_adamw_32bit",
    "paged_adamw8bit": "paged_adamw_8bit",
}


def dpo_args(config: TrainConfig, run_dir: Path, dtype: str, device: str, evaluating: bool):
    """finch's settings as TRL's DPOConfig."""
    import trl

    return trl.DPOConfig(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the steps
        weight_decay=config.weight_decay,
        **({"optim": TRL_OPTIMIZERS[optimizer_name(config)]} if config.optimizer != "auto" else {}),
        max_grad_norm=config.max_grad_norm or DEFAULT_MAX_GRAD_NORM,
        activation_checkpointing=config.gradient_checkpointing,
        max_length=config.max_seq_len,
        beta=config.dpo_beta,
        bf16=dtype == "bfloat16",
        fp16=dtype == "float16",
        use_cpu=device == "cpu",
        report_to="none",  # finch's trackers (report_to) get every step record through on_step
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.eval_every or None,
        save_strategy="steps" if config.save_every else "no",
        save_steps=config.save_every or 500,
        save_total_limit=None if config.keep_checkpoints == "all" else config.keep_checkpoints,
        logging_steps=1,
        seed=config.seed,
        disable_tqdm=True,
    )


def load_policy(hf_dir: Path, dtype: str):
    """The base model and its tokenizer, with a chat template (a base model's family format) and a pad token."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if not tokenizer.chat_template:  # base models: their family's turn format, as for SFT
        model_type = AutoConfig.from_pretrained(hf_dir).model_type
        tokenizer.chat_template = chat_renderer(tokenizer, model_type).template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype)), tokenizer


def train_dpo(
    config: TrainConfig,
    run: RunContext,
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
    from datasets import Dataset

    run_dir = run.run_dir
    check_dpo_settings(config)
    assert config.data is not None
    train_file, test_file = data_files(config.data)
    train_rows = read_preferences(train_file)
    test_rows = read_preferences(test_file) if test_file else None
    checkpoint = latest_trl_checkpoint(run_dir) if run.resume else None
    if run.resume and checkpoint is None:
        raise UsageError(f"--resume {run_dir}: no checkpoint there yet; start the run again without --resume.")
    model, tokenizer = load_policy(run.hf_dir, run.dtype)
    files = RunFiles(run_dir)
    if checkpoint is None:
        files.start_log()
    else:
        if files.read_run_yaml().get("data_hash") != file_hash(train_file, test_file):
            raise UsageError(f"--resume {run_dir}: the data changed since the run started; resume needs the same data.")
        files.truncate_log(int(checkpoint.name.rsplit("-", 1)[-1]))  # steps after it run again
        on_message(f"resuming {run_dir} from {checkpoint.name}")
    lineage = {
        **run.lineage(),
        "data_hash": file_hash(train_file, test_file),
        "train_samples": len(train_rows),
        "test_samples": len(test_rows) if test_rows else 0,
    }
    write_run_yaml(files, config, lineage, status="running")
    evaluating = bool(test_rows and config.eval_every)
    follower = RunFollower(config, files, files.read_log(), evaluating, bool(test_rows), on_step, on_message)
    trainer = trl.DPOTrainer(
        model=model,
        args=dpo_args(config, run_dir, run.dtype, run.device, evaluating),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(test_rows) if test_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=[trl_callback(follower, run_dir)],
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    eval_loss = trainer.evaluate()["eval_loss"] if test_rows else None
    follower.finish()
    trainer.model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    plot_loss(follower.log, run_dir / "loss.png")
    train_loss = follower.log[-1]["loss"] if follower.log else None
    tokens_per_s = round(follower.trained / max(follower.seconds, 1e-9), 2)
    steps, peak = trainer.state.global_step, round(peak_rss_gb(), 3)
    result = TrainResult(run_dir, steps, train_loss, eval_loss, tokens_per_s, peak, follower.log, follower.best_loss)
    outcome = {
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": eval_loss,
        "tokens_per_s": result.tokens_per_s,
        "best_eval_loss": result.best_eval_loss,
    }
    write_run_yaml(files, config, lineage, status="finished", result=outcome)
    return result
