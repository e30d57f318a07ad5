"""Preparing models: a user's GGUF is converted once to an HF directory that computes what the original computes."""

from __future__ import annotations

import json

import pytest

from finch.errors import UsageError
from finch.models.info import model_info
from finch.models.prepare import prepare_model
from finch.models.resolve import resolve_model
from tests.conftest import run_finch


@pytest.mark.parametrize("family", ["gemma3"])
def test_gguf_converts_to_an_equivalent_hf_dir(family, request, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original = request.getfixturevalue(f"tiny_{family}_dir")
    gguf = request.getfixturevalue(f"tiny_{family}_gguf")
    model = resolve_model(str(gguf), tmp_path / "models")
    converted = prepare_model(model)
    assert converted == model.path and (converted / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    assert resolve_model(str(gguf), tmp_path / "models").needs_preparing is False

    text = "The weather station measures wind, rain and temperature every ten minutes."
    ids_then = AutoTokenizer.from_pretrained(original)(text).input_ids
    assert AutoTokenizer.from_pretrained(converted)(text).input_ids == ids_then
    with torch.no_grad():
        before = AutoModelForCausalLM.from_pretrained(original, dtype=torch.float32)(torch.tensor([ids_then])).logits
        after = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)(torch.tensor([ids_then])).logits
    agreement = (before.argmax(-1) == after.argmax(-1)).float().mean().item()
    assert agreement >= 0.95, agreement  # f16 GGUF then bf16 safetensors: rounding, not a different model

    info = model_info(model, converted)
    assert info.kind == "gguf" and info.gguf == str(gguf) and info.chat_template is True
    assert info.parameters == sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(original).parameters())


def test_gguf_with_llama3_rope_scaling_is_refused_clearly(tiny_llama_gguf, tmp_path):
    # transformers' GGUF reader drops Llama 3 RoPE scaling, so a converted model would silently compute otherwise.
    with pytest.raises(UsageError, match="Llama 3 style RoPE scaling"):
        prepare_model(resolve_model(str(tiny_llama_gguf), tmp_path / "models"))
    assert not list((tmp_path / "models").glob("*"))


def test_model_info_on_an_hf_dir_via_the_cli(tiny_llama_dir, finch_home):
    result = run_finch("model", "info", str(tiny_llama_dir), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["kind"], info["architecture"], info["path"]) == ("hf", "LlamaForCausalLM", str(tiny_llama_dir))
    assert info["chat_format"] == "the model's own template" and info["vocab_size"] == 640
