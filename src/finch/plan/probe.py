"""This machine's matmul rate, measured once (a few seconds) and cached: the CPU side of a time plan."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from finch.fileio import atomic_write_json


def matmul_tflops(dtype: str, cache: Path, seconds: float = 2.0) -> float:
    """TFLOP/s of a training-sized matmul (512 x 1024 @ 1024 x 4096) in `dtype` on this machine's CPU threads."""
    import torch

    key = f"{platform.processor() or platform.machine()}|{torch.__version__}|{torch.get_num_threads()}|{dtype}"
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
