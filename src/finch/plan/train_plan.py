"""`finch plan train`: the memory, time and cost of the run `finch train` would start with the same settings, whether
it fits this device, and the cheapest changes that make it fit. `finch train` runs the same plan before it starts."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from finch.errors import FinchError
from finch.plan.estimate import (
    GB,
    Hardware,
    MemoryPlan,
    TimePlan,
    fewer_targets,
    gpu_tflops,
    lora_table,
    plan_memory,
    plan_time,
)
from finch.plan.shape import ModelShape, read_shape
from finch.train.config import TrainConfig, optimizer_name

MEMORY_ENV = "FINCH_MAX_MEMORY_GB"  # the memory finch may plan with, per device, when it should use less than is free


class PlanConfig(BaseModel):
    """What the plan needs besides the run's own settings: the hardware, when it is not this machine's."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Device to plan for; auto: this one.")
    gpu: str | None = Field(None, description="GPU model for the throughput (a100, h100, 4090, ...); auto: this one.")
    memory_gb: float | None = Field(None, gt=0, description="Memory per device; none: this machine's available.")
    sharding: Literal["ddp", "fsdp", "zero2", "zero3"] = Field("ddp", description="How several GPUs share state.")
    price_per_hour: float | None = Field(None, ge=0, description="Price of the machine per hour, for the cost.")


@dataclass
class Advice:
    change: str
    total_gb: float
    fits: bool


@dataclass
class TrainPlan:
    model: str
    shape: ModelShape
    config: TrainConfig
    hardware: Hardware
    dtype: str
    memory: MemoryPlan
    time: TimePlan
    lora: list[dict]
    advice: list[Advice]
    cost: float | None

    @property
    def fits(self) -> bool | None:
        available = self.hardware.available_gb
        return None if available is None else self.memory.total_gb <= available


def detect_hardware(plan: PlanConfig, gpus: int, dtype: str, cache: Path | None) -> Hardware:
    """The plan's hardware: what PlanConfig says, else this machine (memory available now, measured matmul rate)."""
    from finch.system import system_info

    profile = system_info().profile
    device = profile.device if plan.device == "auto" else plan.device
    available = plan.memory_gb
    if available is None and os.environ.get(MEMORY_ENV):
        available = float(os.environ[MEMORY_ENV])
    tflops, source = None, ""
    if device == "cpu":
        if available is None:
            import psutil

            available = psutil.virtual_memory().available / GB
        if cache is not None and plan.device == "auto":
            from finch.plan.probe import matmul_tflops

            tflops, source = matmul_tflops(dtype, cache), f"{dtype} matmul measured on this CPU"
    else:
        name = plan.gpu
        if name is None and device == "cuda":
            import torch

            name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
            if available is None and torch.cuda.is_available():
                available = torch.cuda.mem_get_info()[1] / GB
        known = gpu_tflops(name) if name else None
        if known:
            tflops, source = known
    return Hardware(device, gpus, available, tflops, source, plan.sharding)


def run_tokens(config: TrainConfig, hf_dir: Path | None) -> tuple[int, int, str]:
    """(training tokens, mean sample length, where they came from): the data's own token counts when it is given,
    else every sample a full max_seq_len."""
    per_step = config.batch_size * config.grad_accum
    if config.data is not None and hf_dir is not None:
        from finch.train.data import load_data

        samples = load_data(config, hf_dir).train.samples
        lengths = [len(s.input_ids) for s in samples]
        mean = max(1, round(sum(lengths) / len(lengths)))
        if config.max_steps:
            return config.max_steps * per_step * mean, mean, f"{config.max_steps} steps of samples from {config.data}"
        return round(config.epochs * sum(lengths)), mean, f"{config.epochs:g} epochs of {config.data}"
    steps = config.max_steps or 100
    tokens = steps * per_step * config.max_seq_len
    return tokens, config.max_seq_len, f"{steps} steps of full {config.max_seq_len}-token samples (no --data)"


def plan_train(
    config: TrainConfig,
    plan: PlanConfig,
    config_json: Path,
    model: str,
    hf_dir: Path | None = None,
    probe_cache: Path | None = None,
) -> TrainPlan:
    """The plan for `config` on `plan`'s hardware; `hf_dir` (the model's weights folder) lets it count `--data`."""
    from finch.train.context import training_device_and_dtype

    shape = read_shape(config_json)
    device, dtype = training_device_and_dtype(config)
    if plan.device not in ("auto", device):
        device = plan.device
        dtype = "bfloat16" if config.dtype == "auto" and device != "cpu" else dtype
        if config.method == "full" and config.dtype == "auto":
            dtype = "float32" if device == "cpu" else "bfloat16"
    gpus = config.processes if config.launcher == "accelerated" and device == "cuda" else 1
    hardware = detect_hardware(plan, gpus, dtype, probe_cache)
    memory = plan_memory(shape, config, hardware, dtype)
    tokens, context, source = run_tokens(config, hf_dir)
    steps = config.max_steps or max(1, round(tokens / (context * config.batch_size * config.grad_accum * gpus)))
    optimizer_ns = None
    if hardware.device == "cpu" and probe_cache is not None and plan.device == "auto":
        from finch.plan.probe import optimizer_ns_per_weight

        optimizer_ns = optimizer_ns_per_weight(optimizer_name(config), dtype, probe_cache)
    time_plan = plan_time(shape, config, hardware, tokens, context, steps, optimizer_ns)
    time_plan.source = f"{source}; throughput: {time_plan.source}"
    cost = None
    if plan.price_per_hour is not None and time_plan.seconds is not None:
        cost = plan.price_per_hour * time_plan.seconds / 3600
    lora = lora_table(shape, config.lora_rank)
    result = TrainPlan(model, shape, config, hardware, dtype, memory, time_plan, lora, [], cost)
    if result.fits is False:
        result.advice = advise(shape, config, hardware, dtype)
    return result


def advise(shape: ModelShape, config: TrainConfig, hardware: Hardware, dtype: str) -> list[Advice]:
    """Changes that cut memory, cheapest first, each with its new estimate (and whether it fits alone)."""
    changes: list[tuple[str, dict]] = []
    if not config.gradient_checkpointing:
        changes.append(("--gradient-checkpointing", {"gradient_checkpointing": True}))
    if config.optimizer_in_backward:
        pass  # one forward pass of one micro-batch a step: neither forward tokens nor accumulation can change
    elif hardware.device == "cpu":
        if (config.forward_tokens or 512) > 128:
            half = (config.forward_tokens or 512) // 2
            changes.append((f"--forward-tokens {half}", {"forward_tokens": half}))
    elif config.batch_size > 1:
        half = config.batch_size // 2
        accum = config.grad_accum * 2
        changes.append((f"--batch-size {half} --grad-accum {accum}", {"batch_size": half, "grad_accum": accum}))
    if config.max_seq_len > 256:
        changes.append((f"--max-seq-len {config.max_seq_len // 2}", {"max_seq_len": config.max_seq_len // 2}))
    if config.method == "full":
        if not optimizer_name(config).endswith("8bit"):
            eight_bit = "paged_adamw8bit" if hardware.device == "cuda" else "adamw8bit"
            changes.append((f"--optimizer {eight_bit}", {"optimizer": eight_bit}))
        stepping_fits = config.grad_accum == 1 and config.max_grad_norm is None and config.forward_tokens is None
        if not config.optimizer_in_backward and stepping_fits and config.launcher != "accelerated":
            changes.append(("--optimizer-in-backward", {"optimizer_in_backward": True}))
        changes.append(("--method lora", {"method": "lora"}))
    if config.method == "lora" and hardware.device == "cuda":
        changes.append(("--method qlora", {"method": "qlora"}))
    if config.method in ("lora", "qlora") and fewer_targets(config):
        changes.append(("--lora-targets q_proj,v_proj", {"lora_targets": ["q_proj", "v_proj"]}))
    advice = []
    available = hardware.available_gb or math.inf
    for change, update in changes:
        total = plan_memory(shape, config.model_copy(update=update), hardware, dtype).total_gb
        advice.append(Advice(change, total, total <= available))
    return advice


def preflight(plan: TrainPlan) -> None:
    """Refuse a run the plan says will not fit this machine (by more than 10%), with what would make it fit."""
    available = plan.hardware.available_gb
    if available is None or plan.memory.total_gb <= 1.1 * available:
        return
    fitting = [a for a in plan.advice if a.fits]
    hint = (
        "; it fits with " + " or ".join(f"{a.change} ({a.total_gb:.1f} GB)" for a in fitting[:3])
        if fitting
        else "; nothing alone makes it fit: combine " + ", ".join(a.change for a in plan.advice[:3])
    )
    raise FinchError(
        f"the plan needs {plan.memory.total_gb:.1f} GB and {plan.hardware.device} has {available:.1f} GB "
        f"available{hint} (finch plan train shows the parts; --force starts anyway)."
    )


class PlanTrainSettings(TrainConfig, PlanConfig):
    """`finch plan train`'s settings: the run's (the same flags and train.yaml as finch train) and the hardware's."""

    def split(self) -> tuple[TrainConfig, PlanConfig]:
        values = self.model_dump()
        train = TrainConfig.model_validate({k: values[k] for k in TrainConfig.model_fields})  # validated already
        return train, PlanConfig.model_validate({k: values[k] for k in PlanConfig.model_fields})
