"""The tiny test models, and finch's GGUF writer checked on them: llama.cpp must tokenize and predict as HF does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finch.errors import UsageError
from finch.export import write_gguf

TEXTS = [
    "What is the capital of France? The capital of France is Paris.",
    "  Two  spaces,\ttabs\nand\n\nnew lines\n",
    "Café crème, naïve — 😀 and 東京: characters the small vocabulary lacks.",
    "In 1969, 12345 people wrote: don't, we'll, they're!",
]
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "How many legs does a spider have?"},
]
# Family -> (special tokens its chat format needs, end-of-turn token).
FAMILIES = {
    "gemma3": (["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>"], "<end_of_turn>"),
    "llama": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"], "<|eot_id|>"),
}


@pytest.fixture(scope="module")
def tiny(request, tiny_gemma3_dir, tiny_llama_dir, tiny_gemma3_gguf, tiny_llama_gguf):
    """(family, HF dir, f16 GGUF) for one family."""
    dirs = {"gemma3": (tiny_gemma3_dir, tiny_gemma3_gguf), "llama": (tiny_llama_dir, tiny_llama_gguf)}
    return request.param, *dirs[request.param]


both_families = pytest.mark.parametrize("tiny", ["gemma3", "llama"], indirect=True)


def load_llama_cpp(gguf: Path, n_ctx: int = 256):
    import llama_cpp

    return llama_cpp.Llama(model_path=str(gguf), logits_all=True, n_ctx=n_ctx, n_threads=2, verbose=False)


def hf_tokenizer(hf_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_dir)


def hf_logits(hf_dir: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def llama_cpp_logits(gguf: Path, ids: list[int]) -> np.ndarray:
    llm = load_llama_cpp(gguf)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


def long_token_ids(hf_dir: Path) -> list[int]:
    """A chat-formatted text well past the Gemma sliding window (8) and the Llama original context (64)."""
    tokenizer = hf_tokenizer(hf_dir)
    chat = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(chat + " ".join(TEXTS), add_special_tokens=False)["input_ids"]
    assert len(ids) >= 80
    return ids[:120]


@both_families
def test_tiny_model_loads_in_transformers_with_family_tokens_and_template(tiny):
    from transformers import AutoModelForCausalLM

    family, hf_dir, _ = tiny
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == {"gemma3": "gemma3_text", "llama": "llama"}[family]
    model = AutoModelForCausalLM.from_pretrained(hf_dir)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000

    tokenizer = hf_tokenizer(hf_dir)
    specials, end_of_turn = FAMILIES[family]
    vocab = tokenizer.get_vocab()
    assert 300 <= len(tokenizer) <= 2000
    assert all(token in vocab for token in [*specials, end_of_turn])
    if family == "gemma3":
        assert [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id] == [
            0,
            1,
            2,
            3,
        ]
    assert tokenizer("Paris")["input_ids"][0] == tokenizer.bos_token_id
    chat = tokenizer.apply_chat_template(MESSAGES[1:2], tokenize=False, add_generation_prompt=True)
    expected = {
        "gemma3": "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
        "llama": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    }[family]
    assert chat == expected
    # The end-of-turn token is a single token, and generation stops on it.
    assert len(tokenizer(end_of_turn, add_special_tokens=False)["input_ids"]) == 1
    assert vocab[end_of_turn] in model.generation_config.eos_token_id


@both_families
def test_random_weights_give_varied_predictions(tiny):
    _, hf_dir, _ = tiny
    logits = hf_logits(hf_dir, long_token_ids(hf_dir))
    predictions = logits.argmax(-1)
    assert len(set(predictions.tolist())) > len(predictions) // 4
    assert logits.std() > 0.5


@both_families
def test_llama_cpp_tokenizes_plain_text_like_hf(tiny):
    _, hf_dir, gguf = tiny
    tokenizer, llm = hf_tokenizer(hf_dir), load_llama_cpp(gguf)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=True, special=False) == tokenizer(text)["input_ids"], text


@both_families
def test_llama_cpp_tokenizes_chat_text_like_hf(tiny):
    family, hf_dir, gguf = tiny
    tokenizer, llm = hf_tokenizer(hf_dir), load_llama_cpp(gguf)
    chat = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    expected = tokenizer(chat, add_special_tokens=False)["input_ids"]
    assert llm.tokenize(chat.encode(), add_bos=False, special=True) == expected
    # Every turn ends in the end-of-turn token (Gemma folds the system prompt into the first user turn).
    turns = [m for m in MESSAGES if family == "llama" or m["role"] != "system"]
    assert expected.count(tokenizer.convert_tokens_to_ids(FAMILIES[family][1])) == len(turns)


@both_families
def test_gguf_metadata_carries_tokenizer_ids_and_chat_template(tiny):
    from gguf import GGUFReader

    family, hf_dir, gguf = tiny
    tokenizer = hf_tokenizer(hf_dir)
    meta = {name: field.contents() for name, field in GGUFReader(gguf).fields.items()}
    assert meta["general.architecture"] == family
    assert meta["general.file_type"] == 1  # mostly f16
    assert meta["tokenizer.ggml.model"] == {"gemma3": "llama", "llama": "gpt2"}[family]
    assert meta["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert meta["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert meta["tokenizer.ggml.eot_token_id"] == tokenizer.convert_tokens_to_ids(FAMILIES[family][1])
    assert meta["tokenizer.ggml.add_bos_token"] is True
    assert meta["tokenizer.chat_template"] == tokenizer.chat_template
    assert meta["tokenizer.ggml.tokens"] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "q8_0"])
@both_families
def test_llama_cpp_logits_match_transformers(tiny, dtype, tmp_path):
    _, hf_dir, _ = tiny
    gguf = write_gguf(hf_dir, tmp_path / f"model-{dtype}.gguf", dtype=dtype)
    ids = long_token_ids(hf_dir)
    expected, actual = hf_logits(hf_dir, ids), llama_cpp_logits(gguf, ids)
    agreement = (expected.argmax(-1) == actual.argmax(-1)).mean()
    max_diff = np.abs(expected - actual).max()
    # Measured (logit std ~1 Gemma, ~4 Llama): max |diff| f32 0.003/0.010, f16 0.006/0.018, bf16 0.04/0.13,
    # q8_0 0.13/0.54; argmax agreement 100% for f32/f16, 94-99% for bf16/q8_0.
    limits = {"f32": (0.99, 0.05), "f16": (0.99, 0.1), "bf16": (0.95, 0.5), "q8_0": (0.9, 1.0)}
    min_agreement, max_allowed = limits[dtype]
    assert agreement >= min_agreement, (agreement, max_diff)
    assert max_diff < max_allowed, (agreement, max_diff)


def test_unsupported_architecture_is_a_usage_error(tiny_llama_dir, tmp_path):
    hf_dir = tmp_path / "phi3"
    hf_dir.mkdir()
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    config.update(model_type="phi3", architectures=["Phi3ForCausalLM"])
    (hf_dir / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out.gguf"
    with pytest.raises(UsageError, match=r"phi3.*Phi3ForCausalLM.*supported: gemma3_text, gemma3, llama, qwen2"):
        write_gguf(hf_dir, out)
    assert list(tmp_path.glob("*.gguf")) == [] and list(tmp_path.glob(".*partial")) == []


def test_unknown_dtype_is_a_usage_error(tiny_llama_dir, tmp_path):
    with pytest.raises(UsageError, match="q4_k"):
        write_gguf(tiny_llama_dir, tmp_path / "out.gguf", dtype="q4_k")


def test_export_replaces_an_existing_file_and_leaves_no_partial_file(tiny_gemma3_dir, tmp_path):
    out = tmp_path / "model.gguf"
    out.write_bytes(b"old")
    write_gguf(tiny_gemma3_dir, out, dtype="f32")
    assert out.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]
