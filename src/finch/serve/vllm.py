"""Hand serving to vLLM when it is installed: its own OpenAI server, started with the right arguments."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from finch.errors import UsageError


def vllm_command(
    hf_dir: Path, host: str, port: int, api_key: str | None, ctx: int | None, adapter: Path | None, name: str
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(hf_dir),
        "--served-model-name",
        name,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if api_key:
        cmd += ["--api-key", api_key]
    if ctx:
        cmd += ["--max-model-len", str(ctx)]
    if adapter is not None:
        cmd += ["--enable-lora", "--lora-modules", f"{adapter.name}={adapter}"]
    return cmd


def exec_vllm(cmd: list[str]) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise UsageError(
            "--backend vllm: vLLM is not installed here; `pip install vllm` on a CUDA machine, or use auto."
        )
    os.execv(cmd[0], cmd)
