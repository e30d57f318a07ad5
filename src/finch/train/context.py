"""What every trainer of a run is handed, resolved once by `start_run`: the base model, the run folder, whether the
run continues, and the device and dtype it trains in. The SFT loop, DPO, phased training and the multi-process
workers all read it; none of them looks the hardware up again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from finch.train.config import TrainConfig


@dataclass(frozen=True)
class RunContext:
    hf_dir: Path
    base_model: str  # what run.yaml records: a built-in name or hub id (portable), else the HF directory
    run_dir: Path
    resume: bool
    device: str
    dtype: str

    def lineage(self) -> dict:
        """The part of run.yaml every run records besides its config: where its weights came from and how they
        were held."""
        return {
            "base_model": self.base_model,
            "base_model_path": str(self.hf_dir),
            "dtype": self.dtype,
            "device": self.device,
        }

    def inside(self, folder: Path, resume: bool) -> RunContext:
        """The same run, trained in a sub-folder (a phase of phased training)."""
        return replace(self, run_dir=folder, resume=resume)


def training_device_and_dtype(config: TrainConfig) -> tuple[str, str]:
    """The machine's training device, and the dtype: the config's, else what the machine computes fastest (finch
    system info), except that full fine-tuning keeps fp32 weights (AdamW's steps on bf16 weights round away)."""
    from finch.system import system_info

    profile = system_info().profile
    if config.dtype != "auto":
        return profile.device, config.dtype
    return profile.device, "float32" if config.method == "full" else profile.dtype


def concrete_launcher(config: TrainConfig) -> TrainConfig:
    """The config with launcher auto made what it means on this machine: accelerated over every GPU of a machine
    with several, for the runs that launcher trains (lora or full, not phased, not stepped in the backward pass), else
    single."""
    if config.launcher != "auto":
        return config
    from finch.system import system_info

    several_gpus = system_info().profile.training_launcher == "accelerated"
    if several_gpus and config.method in ("lora", "full") and not config.phased and not config.optimizer_in_backward:
        import torch

        return config.model_copy(update={"launcher": "accelerated", "processes": torch.cuda.device_count()})
    return config.model_copy(update={"launcher": "single"})
