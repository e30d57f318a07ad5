"""Checkpoints for exact resume: adapter weights, optimiser, scheduler, RNG state and the data position.

Each is written to a temp folder and renamed into place, so a kill -9 at any moment leaves either the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

KEEP = 2


@dataclass
class TrainerState:
    step: int  # optimiser steps done
    epoch: int  # data position: the epoch of the next micro-batch...
    batch_in_epoch: int  # ...and its index in that epoch's order
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(run_dir: Path, state: TrainerState, trainable: dict[str, torch.Tensor], optimizer, scheduler):
    root = checkpoints_dir(run_dir)
    final = root / f"step-{state.step:07d}"
    tmp = root / f".step-{state.step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in trainable.items()}, tmp / "trainable.safetensors")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng}, tmp / "opt.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(asdict(state)), encoding="utf-8")
    for file in tmp.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = sorted(p for p in checkpoints_dir(run_dir).glob("step-*") if (p / "trainer_state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> TrainerState:
    weights = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    bundle = torch.load(path / "opt.pt", weights_only=True)
    optimizer.load_state_dict(bundle["optimizer"])
    scheduler.load_state_dict(bundle["scheduler"])
    torch.set_rng_state(bundle["rng"]["torch"])
    if "cuda" in bundle["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(bundle["rng"]["cuda"])
    return TrainerState(**json.loads((path / "trainer_state.json").read_text(encoding="utf-8")))
