"""`finch system info`."""

from __future__ import annotations

import typer

from finch.cli.common import key_value_table, print_json
from finch.cli.ui import out
from finch.config import load_settings
from finch.system import system_info

system_app = typer.Typer(help="What this machine is and how finch will use it.", no_args_is_help=True)


@system_app.command("info")
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Python, torch, accelerators, CPU features, memory, disk, key packages and finch's hardware profile."""
    settings = load_settings()
    info = system_info(disk_path=settings.locations.data_dir)
    if as_json:
        print_json(info.to_dict())
        return
    flags = ", ".join(name for name, present in info.cpu_flags.items() if present) or "none detected"
    rows = [
        ("Python", info.python),
        ("Platform", info.platform),
        ("torch", f"{info.torch} ({info.torch_build} build)"),
        ("CPU", f"{info.cpu_model}, {info.cpu_cores} cores"),
        ("CPU features", flags),
        ("CPU bf16", "yes (native)" if info.cpu_bf16 else "no (bf16 would be emulated: slow)"),
        ("RAM", f"{info.ram_gb} GB"),
        ("Disk free", f"{info.disk_free_gb} GB at {info.disk_path}"),
        ("MPS", "available" if info.mps_available else "no"),
    ]
    for i, acc in enumerate(info.accelerators):
        rows.append((f"GPU {i}", f"{acc.name} ({acc.kind}, {acc.memory_gb} GB, bf16 {'yes' if acc.bf16 else 'no'})"))
    if not info.accelerators:
        rows.append(("GPU", "none (CUDA/ROCm not available)"))
    for name, version in info.packages.items():
        rows.append((name, version or "not installed"))
    p = info.profile
    rows += [
        ("Profile: device", p.device),
        ("Profile: dtype", p.dtype),
        ("Profile: training launcher", p.training_launcher),
        ("Profile: QLoRA", "possible" if p.qlora_possible else "not possible"),
        ("Profile: why", "; ".join(p.reasons)),
    ]
    out.print(key_value_table(rows))
