"""The training configuration: one pydantic model, read from train.yaml and overridden by flags."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from finch.errors import RenamedSetting
from finch.stage_config import load_stage_config


class TrainConfig(BaseModel):
    """Everything a run depends on; the resolved copy is printed at start and saved in run.yaml."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(None, description="Dataset directory (train.jsonl, test.jsonl) or a JSONL file.")
    model: str | None = Field(None, description="Base model reference; none: the configured model.")
    method: Literal["lora", "qlora", "full", "dpo"] = Field(
        "lora",
        description="lora; qlora (4-bit NF4 base, CUDA only); full (every weight); dpo on {prompt, chosen, "
        "rejected} rows (needs trl).",
    )
    launcher: Literal["auto", "single", "accelerated"] = Field(
        "auto",
        description="single: one process on one device; accelerated: data-parallel processes; auto: accelerated "
        "over every GPU of a machine with several (lora or full, not phased), else single.",
    )
    max_steps: int | None = Field(None, ge=1, description="Optimiser steps; wins over epochs.")
    # new facts need repeating: on the built-in student, 10 epochs recalled the facts of 11 of 12 trained seed
    # questions where 5 recalled 8 (the README's sweep); a taxonomy's dataset is small, so 10 passes stay short
    epochs: float = Field(10.0, gt=0, description="Passes over the training data.")
    lr: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate, cosine schedule with warmup; none: by model size (2e-3 under 600M "
        "parameters).",
    )
    batch_size: int = Field(4, ge=1, description="Samples per micro-batch, packed into rows of max_seq_len.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimiser step.")
    max_seq_len: int = Field(1024, ge=8, description="Tokens per packed row; longer samples are skipped.")
    lora_rank: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: list[str] | str = Field(
        "all-linear", description="Module names the adapters go on (comma-separated), or all-linear."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of the steps the learning rate warms up over.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    optimizer: Literal["auto", "adamw", "adamw8bit", "paged_adamw", "paged_adamw8bit"] = Field(
        "auto",
        description="adamw (torch); adamw8bit (bitsandbytes: its two moments in 2 bytes a weight, not 8); paged_*: "
        "bitsandbytes' state in CUDA paged memory, moved to CPU memory when the GPU runs short; auto: paged_adamw "
        "for qlora, else adamw.",
    )
    optimizer_in_backward: bool = Field(
        False,
        description="Step each weight as soon as its gradient is complete and free that gradient, so a full "
        "fine-tune never holds all gradients at once; each step is then one forward pass of one micro-batch, "
        "without gradient clipping (needs grad_accum 1, one process).",
    )
    max_grad_norm: float | None = Field(
        None,
        gt=0,
        description="Gradients are clipped to this norm; none: 1.0 (no clipping with optimizer_in_backward).",
    )
    eval_every: int = Field(0, ge=0, description="Eval loss on test.jsonl every N steps; 0: at the end only.")
    save_every: int = Field(50, ge=0, description="Checkpoint every N steps, for --resume; 0: none.")
    checkpoint_steps: list[int] = Field(
        default_factory=list,
        description="Also checkpoint, and eval, at these steps (comma-separated), the last one included.",
    )
    keep_checkpoints: int | Literal["all"] = Field(
        2, description="Checkpoints kept, the newest (each is a model: RUN/checkpoints/step-N); all: every one."
    )
    early_stopping_patience: int = Field(
        0, ge=0, description="Stop after this many evals without a better eval loss (needs eval_every); 0: never."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: less memory.")
    loss_chunk_tokens: int = Field(
        1024, ge=1, description="Labelled positions per output-head pass over the vocabulary (memory vs speed)."
    )
    forward_tokens: int | None = Field(
        None, ge=8, description="Tokens per forward pass; none: 512 on a CPU, else a micro-batch."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; auto: what this machine computes fastest (finch system info)."
    )
    processes: int = Field(
        2, ge=1, description="launcher accelerated: data-parallel processes (one per GPU; on CPU, gloo)."
    )
    phased: bool = Field(
        False, description="LAB: knowledge rows first, then skills rows plus replay; the best eval loss wins."
    )
    replay: Path | None = Field(None, description="JSONL of chat rows mixed into the skills phase (or all the data).")
    replay_ratio: float = Field(0.1, ge=0, description="Replay rows per training row of the phase they join.")
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="Also log steps to tensorboard, mlflow and/or wandb (comma-separated)."
    )
    dpo_beta: float = Field(0.1, gt=0, description="method dpo: how far the tuned model may move from its base.")
    seed: int = Field(42, description="Seed for LoRA init, data order and dropout.")
    output: Path | None = Field(None, description="Run directory; none: runs/<model>-<time>.")

    @field_validator("processes")
    @classmethod
    def _processes_need_accelerated(cls, processes: int, info: ValidationInfo) -> int:
        if processes != 2 and info.data.get("launcher") != "accelerated":
            raise ValueError("only launcher accelerated starts several processes: set it too")
        return processes

    @field_validator("keep_checkpoints")
    @classmethod
    def _keep_at_least_one(cls, keep: int | str) -> int | str:
        if keep != "all" and int(keep) < 1:
            raise ValueError("keep at least 1 checkpoint (or all): --resume continues from the newest")
        return keep

    @field_validator("early_stopping_patience")
    @classmethod
    def _patience_needs_evals(cls, patience: int, info: ValidationInfo) -> int:
        if patience and not info.data.get("eval_every"):
            raise ValueError("counts evals, and there is only one without eval_every: set it too")
        return patience

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, values: object) -> object:
        """Training's `pipeline` (auto, full, accelerated) is `launcher` now, and its `full` is `single`: the
        word pipeline means SDG's simple/full pipelines. Run folders and configs written before keep working."""
        if not isinstance(values, dict) or ("pipeline" not in values and values.get("launcher") != "full"):
            return values
        values = dict(values)
        launcher = values.pop("pipeline", None) or values.get("launcher")
        values["launcher"] = "single" if launcher == "full" else launcher
        warnings.warn(
            f"training's pipeline {launcher} is now launcher {values['launcher']}; the old spelling goes in the next "
            "release",
            RenamedSetting,
            stacklevel=2,
        )
        return values

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.launcher == "accelerated" and (self.phased or self.method in ("dpo", "qlora")):
            raise ValueError("launcher 'accelerated' trains lora or full runs without --phased; use launcher single")
        if self.method == "dpo" and (self.phased or self.replay is not None):
            raise ValueError("--phased and --replay train on chat rows; DPO reads preference pairs, so drop them")
        if self.optimizer_in_backward:
            self._check_optimizer_in_backward()
        return self

    def _check_optimizer_in_backward(self) -> None:
        """Each weight is stepped inside the backward pass, so there is one backward per step and no global
        gradient: every setting that needs either is a contradiction, said before anything loads."""
        if self.method == "dpo":
            raise ValueError("--optimizer-in-backward steps finch's own loop; DPO trains through trl: drop one")
        if self.grad_accum != 1:
            raise ValueError(
                "--optimizer-in-backward steps each weight in the one backward of a step: set grad_accum 1"
            )
        if self.launcher == "accelerated":
            raise ValueError(
                "--optimizer-in-backward steps weights before gradients could be summed across processes: use "
                "launcher single"
            )
        if self.max_grad_norm is not None:
            raise ValueError(
                "--optimizer-in-backward steps each weight before the global gradient norm is known, so gradients "
                "are not clipped: drop max_grad_norm"
            )
        if self.forward_tokens is not None:
            raise ValueError(
                "--optimizer-in-backward runs each step as one forward pass of the micro-batch: drop forward_tokens"
            )


DEFAULT_MAX_GRAD_NORM = 1.0


def optimizer_name(config: TrainConfig) -> str:
    """The optimizer a run uses: the config's, and for auto, QLoRA's paged AdamW or torch's AdamW."""
    if config.optimizer != "auto":
        return config.optimizer
    return "paged_adamw" if config.method == "qlora" else "adamw"


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


def load_train_config(config_file: Path | None, overrides: dict) -> TrainConfig:
    """train.yaml (if given) with the flags that were set on top; unset flags (None) leave the file's value."""
    return load_stage_config(TrainConfig, config_file, overrides, "train")


TRAIN_SETTINGS = "train settings"  # where a SettingError about a value of a TrainConfig says it is
