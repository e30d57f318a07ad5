from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def finch_home(tmp_path, monkeypatch) -> Path:
    """An empty FINCH_HOME, with no FINCH_* overrides leaking in from the environment."""
    for var in list(os.environ):
        if var.startswith("FINCH_"):
            monkeypatch.delenv(var)
    home = tmp_path / "finch-home"
    monkeypatch.setenv("FINCH_HOME", str(home))
    return home


def run_finch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "finch.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory) -> Path:
    """A tiny random Gemma 3 (gemma3_text) HF directory with a small trained Gemma-style tokenizer."""
    from tests.tiny_models import write_tiny_gemma3

    return write_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama HF directory with a small trained Llama 3 style tokenizer."""
    from tests.tiny_models import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2 HF directory (q/k/v biases, tied embeddings) with a small Qwen2 style tokenizer."""
    from tests.tiny_models import write_tiny_qwen2

    return write_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_gemma3_gguf(tiny_gemma3_dir, tmp_path_factory) -> Path:
    """tiny_gemma3_dir exported to an f16 GGUF by finch's own writer."""
    from finch.export import write_gguf

    return write_gguf(tiny_gemma3_dir, tmp_path_factory.mktemp("tiny-gemma3-gguf") / "tiny-gemma3-f16.gguf")


@pytest.fixture(scope="session")
def tiny_llama_gguf(tiny_llama_dir, tmp_path_factory) -> Path:
    """tiny_llama_dir exported to an f16 GGUF by finch's own writer."""
    from finch.export import write_gguf

    return write_gguf(tiny_llama_dir, tmp_path_factory.mktemp("tiny-llama-gguf") / "tiny-llama-f16.gguf")


@pytest.fixture(scope="session")
def builtin_home(tmp_path_factory) -> dict:
    """A FINCH_HOME where `finch model info` ran twice offline: the first call prepared the built-in model (once per
    test session, ~1.5 min), the second reused it. Slow tests share its models folder."""
    home = tmp_path_factory.mktemp("builtin-home")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "FINCH_HOME": str(home)}
    first = run_finch("model", "info", "gemma-3-270m", "--json", env=env)
    second = run_finch("model", "info", "default", "--json", env=env)
    return {"home": home, "env": env, "first": first, "second": second, "models_dir": home / "cache" / "models"}
