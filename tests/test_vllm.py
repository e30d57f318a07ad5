from pathlib import Path

import pytest

from finch.errors import UsageError
from finch.serve.vllm import exec_vllm, vllm_command


def test_vllm_command_carries_every_setting():
    cmd = vllm_command(Path("/m/hf"), "127.0.0.1", 8123, "k", 2048, Path("/runs/r1"), "gemma-3-270m")
    joined = " ".join(cmd)
    assert "-m vllm.entrypoints.openai.api_server --model /m/hf" in joined
    assert "--host 127.0.0.1 --port 8123 --api-key k --max-model-len 2048" in joined
    assert "--enable-lora --lora-modules r1=/runs/r1" in joined
    assert "--served-model-name gemma-3-270m" in joined


def test_vllm_missing_is_a_clear_error():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="vLLM is not installed"):
            exec_vllm(["python", "-c", "pass"])
    else:
        pytest.skip("vLLM is installed here")
