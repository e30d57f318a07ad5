"""What this machine is, and the hardware profile finch picks for it (device, dtype, training launcher)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

KEY_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "datasets",
    "safetensors",
    "gguf",
    "llama-cpp-python",
    "huggingface_hub",
    "vllm",
    "trl",
)


@dataclass
class Accelerator:
    kind: str  # cuda | rocm | mps
    name: str
    memory_gb: float | None
    bf16: bool


@dataclass
class HardwareProfile:
    device: str  # cuda | mps | cpu
    dtype: str  # bfloat16 | float16 | float32
    training_launcher: str  # single | accelerated
    qlora_possible: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class SystemInfo:
    python: str
    platform: str
    torch: str
    torch_build: str  # cpu | cuda X | rocm X
    cpu_model: str
    cpu_cores: int
    cpu_flags: dict[str, bool]
    cpu_bf16: bool
    ram_gb: float
    disk_free_gb: float
    disk_path: str
    accelerators: list[Accelerator]
    mps_available: bool
    packages: dict[str, str | None]
    profile: HardwareProfile

    def to_dict(self) -> dict:
        return asdict(self)


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def hardware_profile(accelerators: list[Accelerator], cpu_bf16: bool, mps: bool, bnb: bool) -> HardwareProfile:
    cuda = [a for a in accelerators if a.kind in ("cuda", "rocm")]
    if cuda:
        bf16 = all(a.bf16 for a in cuda)
        reasons = [f"{len(cuda)} GPU(s): {cuda[0].name}"]
        qlora = bnb and cuda[0].kind == "cuda"
        if not qlora:
            reasons.append("QLoRA needs bitsandbytes on an NVIDIA GPU")
        return HardwareProfile(
            device="cuda",
            dtype="bfloat16" if bf16 else "float16",
            training_launcher="accelerated" if len(cuda) > 1 else "single",
            qlora_possible=qlora,
            reasons=reasons,
        )
    if mps:
        return HardwareProfile("mps", "float16", "single", False, ["Apple GPU (MPS)", "QLoRA needs CUDA"])
    reasons = ["no GPU: training runs on the CPU", "QLoRA needs CUDA (bitsandbytes 4-bit kernels)"]
    if cpu_bf16:
        reasons.insert(1, "CPU has native bf16 (AVX-512 BF16 / AMX): bf16 matmul is several times fp32")
    else:
        reasons.insert(1, "CPU lacks native bf16: fp32 is faster than emulated bf16")
    return HardwareProfile("cpu", "bfloat16" if cpu_bf16 else "float32", "single", False, reasons)


def system_info(disk_path: Path | None = None) -> SystemInfo:
    import psutil
    import torch

    cpu_model, flags = _cpu_model_and_flags()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "neon", "asimd")
    cpu_flags = {name: name in flags for name in wanted if name in flags or name.startswith("avx")}
    cpu_bf16 = bool(flags & {"avx512_bf16", "amx_bf16"})
    if not flags:  # no /proc/cpuinfo (macOS, Windows): ask oneDNN
        cpu_bf16 = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())

    accelerators: list[Accelerator] = []
    if torch.cuda.is_available():
        kind = "rocm" if torch.version.hip else "cuda"
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            accelerators.append(
                Accelerator(kind, props.name, round(props.total_memory / 2**30, 1), torch.cuda.is_bf16_supported())
            )
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    build = (
        f"cuda {torch.version.cuda}"
        if torch.version.cuda
        else f"rocm {torch.version.hip}"
        if torch.version.hip
        else "cpu"
    )

    disk = disk_path or Path.home()
    while not disk.exists():
        disk = disk.parent
    packages = {name: package_version(name) for name in KEY_PACKAGES}
    return SystemInfo(
        python=sys.version.split()[0],
        platform=platform.platform(),
        torch=torch.__version__,
        torch_build=build,
        cpu_model=cpu_model,
        cpu_cores=os.cpu_count() or 1,
        cpu_flags=cpu_flags,
        cpu_bf16=cpu_bf16,
        ram_gb=round(psutil.virtual_memory().total / 2**30, 1),
        disk_free_gb=round(shutil.disk_usage(disk).free / 2**30, 1),
        disk_path=str(disk),
        accelerators=accelerators,
        mps_available=mps,
        packages=packages,
        profile=hardware_profile(accelerators, cpu_bf16, mps, packages["bitsandbytes"] is not None),
    )
