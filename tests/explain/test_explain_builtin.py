"""The built-in Q4_K_M GGUF and its dequantised HF directory answer alike, and finch explain maps that answer on the
dequantised weights in bounded memory."""

from __future__ import annotations

import json

import pytest

from finch.explain.models import load_explained
from finch.explain.run import explain_prompt
from tests.conftest import run_finch

pytestmark = pytest.mark.slow

PROMPTS = ["What is a wind vane?", "Translate 'good morning' into French.", "Write a haiku about the sea."]


def test_the_gguf_and_its_dequantised_weights_give_the_same_greedy_answer(builtin_home):
    model = load_explained("gemma-3-270m", builtin_home["models_dir"])
    assert model.gguf is not None and model.gguf.suffix == ".gguf"
    identical = 0
    for prompt in PROMPTS:
        explanation = explain_prompt(model, [{"role": "user", "content": prompt}], max_tokens=24)
        agreement = explanation.gguf_agreement
        # llama.cpp quantises activations for its matmuls, and its kernels (AVX2, AVX-512) round differently; where
        # the two part, the GGUF's token must be a near tie under the dequantised weights (at least e^-1 as likely as
        # their own), not a different model's: one CI machine parted on the haiku by 0.58 nats.
        assert agreement["identical"] or agreement["gap_nats"] < 1.0, (prompt, agreement)
        identical += agreement["identical"]
        layers, heads, rows, columns = explanation.traces["model"].attention.shape
        assert (layers, heads) == (18, 4) and rows == len(explanation.answer_tokens)
        assert columns == len(explanation.prompt_tokens)
    assert identical >= 1  # a 24-token haiku may part at a near tie on some kernels; a factual answer stays whole


def test_explain_cli_on_the_builtin_model_reports_its_peak_memory(builtin_home, tmp_path):
    out = tmp_path / "out"
    result = run_finch(
        "explain",
        "--model",
        "gemma-3-270m",
        "What is a wind vane?",
        "--max-tokens",
        "16",
        "--output",
        str(out),
        env=builtin_home["env"],
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["gguf_agreement"]["identical"], summary["gguf_agreement"]
    assert "the dequantised weights give the GGUF's greedy answer" in result.stdout
    # The dequantised model in float32 (~1.1 GB) plus llama.cpp's GGUF and one layer's attention at a time.
    assert 1000 < summary["peak_rss_mb"] < 4000
    assert (out / "attention" / "layer-17.png").is_file() and (out / "explain.html").is_file()
