"""This machine's matmul rate and optimiser step cost, measured once (a few seconds) and cached: the CPU side of a
time plan."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from finch.fileio import atomic_write_json


def matmul_tflops(dtype: str, cache: Path, seconds: float = 2.0) -> float:
    """TFLOP/s of a training-sized matmul (512 x 1024 @ 1024 x 4096) in `dtype` on this machine's CPU threads."""
    import torch

    key = f"{_machine()}|{dtype}"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if key in known:
        return known[key]
    a = torch.randn(512, 1024, dtype=getattr(torch, dtype))
    b = torch.randn(1024, 4096, dtype=getattr(torch, dtype))
    a @ b  # warm up the kernels
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    rate = runs * 2 * 512 * 1024 * 4096 / (time.perf_counter() - started) / 1e12
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache, {**known, key: rate})
    return rate


def optimizer_ns_per_weight(optimizer: str, dtype: str, cache: Path, weights: int = 2**21) -> float:
    """Nanoseconds an optimiser step takes per trainable weight on this CPU (finch.train.loop.make_optimizer's
    optimiser, on one tensor of `weights` in `dtype`). bitsandbytes' 8-bit AdamW runs about six times torch's here."""
    import torch

    from finch.train.config import TrainConfig
    from finch.train.loop import make_optimizer

    key = f"{_machine()}|{optimizer}|{dtype}"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if key in known:
        return known[key]
    weight = torch.nn.Parameter(torch.zeros(weights // 1024, 1024, dtype=getattr(torch, dtype)))
    weight.grad = torch.randn_like(weight)
    step = make_optimizer(TrainConfig(data=None, optimizer=optimizer, lr=1e-4), [weight])
    step.step()  # the state is made on the first step
    runs, started = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - started < 0.5:
        step.step()
        runs += 1
    ns = (time.perf_counter() - started) / runs / weights * 1e9
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache, {**known, key: ns})
    return ns


def _machine() -> str:
    """What a measured rate depends on: the processor, torch's version and its threads."""
    import torch

    return f"{platform.processor() or platform.machine()}|{torch.__version__}|{torch.get_num_threads()}"
