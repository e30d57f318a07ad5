"""The built-in Gemma 3 270M: prepared offline, converted once, and computing what llama.cpp computes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_finch

pytestmark = pytest.mark.slow

PASSAGE = (
    "The history of the bicycle begins in the early nineteenth century, when inventors in Europe experimented with "
    "two-wheeled machines pushed along by the rider's feet. Pedals attached to the front wheel appeared in the "
    "1860s, and the safety bicycle, with a chain driving the rear wheel and two wheels of equal size, became popular "
    "in the 1880s. Pneumatic tyres made riding far more comfortable, and within a few years millions of people used "
    "bicycles to travel to work."
)
OTHER_TEXTS = [
    "Hello, world!  Two spaces, a tab\tand ünïcödé — plus 12345 numbers.",
    "def f(x):\n    return x ** 2  # code, too",
]


@pytest.fixture(scope="module")
def builtin(builtin_home):
    """`finch model info` twice in a fresh FINCH_HOME: the first call prepares the model, the second reuses it."""
    for call in ("first", "second"):
        assert builtin_home[call].returncode == 0, builtin_home[call].stderr
    return {**builtin_home, "info": json.loads(builtin_home["second"].stdout)}


def test_model_info_prepares_once_offline(builtin):
    assert "Preparing gemma-3-270m" in builtin["first"].stderr
    assert "Preparing" not in builtin["second"].stderr
    info = builtin["info"]
    assert info == json.loads(builtin["first"].stdout)
    assert (info["architecture"], info["model_type"]) == ("Gemma3ForCausalLM", "gemma3_text")
    assert 260e6 < info["parameters"] < 280e6
    assert (info["vocab_size"], info["context_length"], info["dtype"]) == (262144, 32768, "bfloat16")
    assert info["chat_template"] is True and info["chat_format"] == "gemma (finch default)"
    path = builtin["home"] / "cache" / "models" / "gemma-3-270m"
    assert info["path"] == str(path)
    assert (path / "model.safetensors").is_file() and not list(path.parent.glob(".*partial"))
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config


def test_model_list_shows_the_prepared_model(builtin):
    listed = json.loads(run_finch("model", "list", "--json", env=builtin["env"]).stdout)
    assert {"gemma-3-270m", "gemma-3-270m (gguf)"} <= {m["name"] for m in listed}


@pytest.fixture(scope="module")
def hf_and_llama(builtin):
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = builtin["info"]["path"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    llm = Llama(model_path=builtin["info"]["gguf"], logits_all=True, n_ctx=512, n_threads=2, verbose=False)
    yield tokenizer, model, llm
    llm.close()


def test_tokenizer_matches_llama_cpp(hf_and_llama):
    tokenizer, _, llm = hf_and_llama
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is a safety bicycle?"}, {"role": "assistant", "content": "A bicycle."}],
        tokenize=False,
    )
    for text in [PASSAGE, *OTHER_TEXTS, chat]:
        hf_ids = tokenizer(text, add_special_tokens=not text.startswith("<bos>")).input_ids
        assert llm.tokenize(text.encode(), add_bos=not text.startswith("<bos>"), special=True) == hf_ids, text


def test_next_token_argmax_agrees_with_llama_cpp(hf_and_llama):
    import torch

    tokenizer, model, llm = hf_and_llama
    ids = tokenizer(PASSAGE).input_ids
    assert 90 <= len(ids) <= 130
    llm.reset()
    llm.eval(ids)
    llama_logits = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        hf_logits = model(torch.tensor([ids])).logits[0].numpy()
    agreement = float((hf_logits.argmax(-1) == llama_logits.argmax(-1)).mean())
    print(f"teacher-forced argmax agreement, HF fp32 vs llama.cpp Q4_K_M: {agreement:.3f} over {len(ids)} positions")
    assert agreement >= 0.95


def test_gemma_turn_format_and_end_of_turn_eos(hf_and_llama):
    tokenizer, model, _ = hf_and_llama
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in model.generation_config.eos_token_id
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id


def test_llama_cpp_backend_feeds_the_ids_of_apply_chat_template(builtin, hf_and_llama, tmp_path):
    from finch.inference import load_backend
    from finch.inference.base import chat_prompt_ids

    tokenizer, _, _ = hf_and_llama
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]
    expected = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    expected = list(expected["input_ids"] if hasattr(expected, "keys") else expected)
    backend = load_backend(builtin["info"]["gguf"], tmp_path, ctx=512)
    try:
        assert backend.name == "llama-cpp"
        assert chat_prompt_ids(backend.prompt_format, backend.tokenize, messages) == expected
    finally:
        backend.close()
