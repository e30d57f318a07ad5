"""The training configuration: one pydantic model, read from train.yaml and overridden by flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finch.errors import UsageError


class TrainConfig(BaseModel):
    """Everything a run depends on; the resolved copy is printed at start and saved in run.yaml."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = None  # dataset dir (train.jsonl, test.jsonl) or one JSONL file
    model: str | None = None  # model reference; None = the workspace's configured model
    method: Literal["lora", "qlora", "full", "dpo"] = "lora"
    pipeline: Literal["auto", "full", "accelerated"] = "auto"
    max_steps: int | None = Field(None, ge=1)  # optimiser steps; wins over epochs
    # new facts need repeating: on the built-in student, 10 epochs recalled the facts of 11 of 12 trained seed
    # questions where 5 recalled 8 (the README's sweep); a taxonomy's dataset is small, so 10 passes stay short
    epochs: float = Field(10.0, gt=0)
    lr: float | None = Field(None, gt=0)  # peak learning rate; None = by the model's size (default_lr)
    batch_size: int = Field(4, ge=1)  # samples per micro-batch (packed into rows of max_seq_len)
    grad_accum: int = Field(1, ge=1)
    max_seq_len: int = Field(1024, ge=8)  # tokens per packed row; longer samples are skipped
    lora_rank: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] | str = "all-linear"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    eval_every: int = Field(0, ge=0)  # 0 = only at the end
    save_every: int = Field(50, ge=0)  # checkpoints for --resume; 0 = none
    early_stopping_patience: int = Field(0, ge=0)  # evals without improvement before stopping; 0 = never
    gradient_checkpointing: bool = False
    loss_chunk_tokens: int = Field(1024, ge=1)  # labelled positions per output-head pass over the vocabulary
    forward_tokens: int | None = Field(None, ge=8)  # tokens per forward pass; None = 512 on CPU, else a micro-batch
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    processes: int = Field(2, ge=1)  # --pipeline accelerated: data-parallel processes (one per GPU on CUDA)
    phased: bool = False  # LAB: phase 1 on knowledge rows, phase 2 on the rest plus replay; best eval loss wins
    replay: Path | None = None  # JSONL of chat rows mixed into phase 2 (or into all the data when not phased)
    replay_ratio: float = Field(0.1, ge=0)  # replay rows per training row of the phase they join
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(default_factory=list)  # when installed
    dpo_beta: float = Field(0.1, gt=0)  # --method dpo: how far the tuned model may move from the base
    seed: int = 42
    output: Path | None = None  # run directory; None = runs_dir/<model>-<time>

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.pipeline == "accelerated" and (self.phased or self.method in ("dpo", "qlora")):
            raise ValueError("pipeline 'accelerated' trains lora or full runs without --phased; use pipeline full")
        if self.method == "dpo" and (self.phased or self.replay is not None):
            raise ValueError("--phased and --replay train on chat rows; DPO reads preference pairs, so drop them")
        if self.processes != 2 and self.pipeline != "accelerated":
            raise ValueError(
                "processes: only pipeline 'accelerated' starts several processes; add --pipeline accelerated"
            )
        if self.early_stopping_patience and not self.eval_every:
            raise ValueError("early_stopping_patience counts evals, and there is only one without eval_every: set it")
        return self


def default_lr(parameters: int, method: str = "lora") -> float:
    """The peak learning rate when none is given. Small models need a large one to take in new facts: on the
    built-in 270M student and the sample knowledge leaf, 3 epochs at 1e-3 recalled none of 4 held-out facts and 5 at
    2e-3 did better (the README's sweep). Larger models take the usual LoRA rates (not measured here); full
    fine-tuning moves every weight, so ten times less."""
    lr = 2e-3 if parameters < 600e6 else 5e-4 if parameters < 3e9 else 2e-4
    return lr / 10 if method == "full" else lr


def lora_config(config: TrainConfig):
    """The PEFT LoRA settings of a run, shared by the SFT loop and DPO."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
        task_type="CAUSAL_LM",
    )


def _error(e: ValidationError, where: str) -> UsageError:
    err = e.errors()[0]
    key = ".".join(str(part) for part in err["loc"]) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    got = f" (got {err['input']!r})" if key != "config" else ""
    return UsageError(f"{where}: {key}: {msg}{got}.")


def load_train_config(config_file: Path | None, overrides: dict) -> TrainConfig:
    """train.yaml (if given) with the flags that were set on top; unset flags (None) leave the file's value."""
    values: dict = {}
    if config_file is not None:
        try:
            data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"--config {config_file}: cannot read it ({e.strerror}).") from None
        except yaml.YAMLError as e:
            raise UsageError(f"--config {config_file}: invalid YAML: {getattr(e, 'problem', e)}.") from None
        if data is not None and not isinstance(data, dict):
            raise UsageError(f"--config {config_file}: expected a mapping of keys to values.")
        values.update(data or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as e:
        raise _error(e, f"--config {config_file}" if config_file else "train settings") from None
