"""Checkpoints: each is a model reference (the adapter folder PEFT writes, or the whole model for --method full) and
also holds what an exact resume needs (optimiser, scheduler, RNG state, the data position), so `finch chat`,
`evaluate`, `serve` and `export` take RUN/checkpoints/step-N like any run.

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
from safetensors.torch import load_file

TOKENIZER_FILES = ("tokenizer", "special_tokens", "chat_template")


@dataclass
class TrainerState:
    step: int  # optimiser steps done
    epoch: int  # data position: the epoch of the next micro-batch...
    batch_in_epoch: int  # ...and its index in that epoch's order
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(run_dir: Path, state: TrainerState, model, optimizer, scheduler, keep: int | None) -> Path:
    """The model as it is now and the trainer's state at `state.step`; then only the newest `keep` checkpoints stay
    (None: every one)."""
    root = checkpoints_dir(run_dir)
    final = root / f"step-{state.step:07d}"
    tmp = root / f".step-{state.step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    if not (tmp / "adapter_config.json").is_file():  # a whole model: with its tokenizer, it is an HF directory
        for path in run_dir.iterdir():
            if path.is_file() and path.name.startswith(TOKENIZER_FILES):
                shutil.copyfile(path, tmp / path.name)
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
    if keep is not None:
        for old in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def disk_use(run_dir: Path) -> tuple[int, int]:
    """(checkpoints kept, their bytes)."""
    kept = [p for p in checkpoints_dir(run_dir).glob("step-*") if p.is_dir()]
    return len(kept), sum(f.stat().st_size for p in kept for f in p.iterdir() if f.is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = sorted(p for p in checkpoints_dir(run_dir).glob("step-*") if (p / "trainer_state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> TrainerState:
    with torch.no_grad():
        if (path / "adapter_model.safetensors").is_file():
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, load_file(path / "adapter_model.safetensors"))
        else:  # a whole model, or a checkpoint from before checkpoints were models (its trainable weights by name)
            name = "model.safetensors" if (path / "model.safetensors").is_file() else "trainable.safetensors"
            weights = load_file(path / name)
            params = dict(model.named_parameters())
            for name, value in weights.items():
                if name in params:  # a tied head is saved once, as the embedding
                    params[name].copy_(value)
    bundle = torch.load(path / "opt.pt", weights_only=True)
    optimizer.load_state_dict(bundle["optimizer"])
    scheduler.load_state_dict(bundle["scheduler"])
    torch.set_rng_state(bundle["rng"]["torch"])
    if "cuda" in bundle["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(bundle["rng"]["cuda"])
    return TrainerState(**json.loads((path / "trainer_state.json").read_text(encoding="utf-8")))
