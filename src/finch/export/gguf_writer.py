"""Write an HF model directory (config.json, safetensors, tokenizer) as a GGUF file that llama.cpp runs.

Follows the conventions of llama.cpp's convert_hf_to_gguf.py for the families finch fine-tunes (Gemma 3, Llama, Qwen2),
written out here so an export needs no llama.cpp checkout and fails with a clear message on anything else.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finch.errors import UsageError

# HF model_type -> llama.cpp architecture.
SUPPORTED_MODEL_TYPES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "llama": "llama", "qwen2": "qwen2"}
GGUF_DTYPES = ("f32", "f16", "bf16", "q8_0")

# Tokens that end a chat turn, written as tokenizer.ggml.eot_token_id so llama.cpp stops there.
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|eot_id|>", "<|im_end|>")

# Byte-level BPE pre-tokenizer regexes, by the name llama.cpp knows them under (tokenizer.ggml.pre).
LLAMA3_PRETOKENIZER_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PRETOKENIZER_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
KNOWN_PRETOKENIZERS = {LLAMA3_PRETOKENIZER_REGEX: "llama-bpe", QWEN2_PRETOKENIZER_REGEX: "qwen2"}


@dataclass
class GgufVocab:
    """The tokenizer as llama.cpp reads it: one entry per token id, plus what its algorithm needs."""

    model: str  # "llama": SentencePiece-style BPE ranked by scores; "gpt2": byte-level BPE ranked by merges
    pre: str
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] | None = None
    add_space_prefix: bool | None = None


def write_gguf(hf_dir: Path, out_path: Path, dtype: str = "f16") -> Path:
    """Convert the model in `hf_dir` to a single GGUF file at `out_path`, written atomically."""
    import gguf

    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if dtype not in GGUF_DTYPES:
        raise UsageError(f"GGUF dtype {dtype!r} is not supported; use one of {', '.join(GGUF_DTYPES)}.")
    config = read_text_config(hf_dir)
    arch = SUPPORTED_MODEL_TYPES[config["model_type"]]
    tokenizer = _load_tokenizer(hf_dir)
    vocab = gguf_vocab(tokenizer, config["vocab_size"])

    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(partial, arch)
    try:
        _add_general_metadata(writer, hf_dir.name, dtype)
        if arch == "gemma3":
            _add_gemma3_metadata(writer, config)
        else:
            _add_llama_metadata(writer, config, arch)
        _add_tokenizer_metadata(writer, tokenizer, vocab)
        for name, data in _gguf_tensors(hf_dir, arch, config):
            _add_tensor(writer, name, data, dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, out_path)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
    return out_path


def read_text_config(hf_dir: Path) -> dict[str, Any]:
    """The language model's config (a multimodal Gemma 3 keeps it under text_config), checked for support."""
    path = hf_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"{hf_dir}: no config.json; pass an HF model directory.")
    full = json.loads(path.read_text(encoding="utf-8"))
    model_type = full.get("model_type", "?")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UsageError(
            f"{path}: GGUF export does not support model_type {model_type!r} "
            f"(architecture {(full.get('architectures') or ['?'])[0]}); "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    config = {**full, **full.get("text_config", {}), "model_type": model_type}
    config.setdefault("tie_word_embeddings", full.get("tie_word_embeddings", True))
    return config


def _load_tokenizer(hf_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(hf_dir)
    except (OSError, ValueError) as e:
        raise UsageError(f"{hf_dir}: cannot load the tokenizer ({e}); the directory needs tokenizer.json.") from None


# --- metadata -------------------------------------------------------------------------------------------------


def _add_general_metadata(writer, name: str, dtype: str) -> None:
    import gguf

    file_types = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type(file_types[dtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def rope_parameters(config: dict, layer_type: str | None = None) -> dict:
    """RoPE settings in transformers 5 form ({"rope_type", "rope_theta", ...}), from either config format."""
    params = config.get("rope_parameters")
    if params and layer_type and layer_type in params:
        params = params[layer_type]
    if not params:  # transformers 4 configs: rope_theta beside an optional rope_scaling
        params = {"rope_type": "default", **(config.get("rope_scaling") or {})}
        if layer_type == "sliding_attention":
            params = {"rope_type": "default", "rope_theta": config.get("rope_local_base_freq", 10_000.0)}
        else:
            params.setdefault("rope_theta", config.get("rope_theta", 10_000.0))
    params = dict(params)
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    return params


def _add_shared_metadata(writer, config: dict) -> None:
    writer.add_context_length(config.get("max_position_embeddings", 8192))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads", config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))


def _gemma3_layer_types(config: dict) -> list[str]:
    if config.get("layer_types"):
        return list(config["layer_types"])
    pattern = config.get("sliding_window_pattern") or config.get("_sliding_window_pattern") or 6
    n = config["num_hidden_layers"]
    return ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n)]


def _add_gemma3_metadata(writer, config: dict) -> None:
    import gguf

    head_dim = _head_dim(config)
    # llama.cpp scales queries by 1/sqrt(head_dim) and has no softcapping for Gemma 3; refuse what it would ignore.
    if config.get("query_pre_attn_scalar", head_dim) != head_dim:
        raise UsageError(
            f"config.json: query_pre_attn_scalar={config['query_pre_attn_scalar']} differs from head_dim={head_dim}, "
            "which llama.cpp's Gemma 3 assumes; this model cannot be exported to GGUF."
        )
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if config.get(key) is not None:
            raise UsageError(f"config.json: {key}={config[key]} is not supported by llama.cpp's Gemma 3.")
    if config.get("use_bidirectional_attention"):
        raise UsageError("config.json: use_bidirectional_attention=true is not supported by llama.cpp's Gemma 3.")

    _add_shared_metadata(writer, config)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    full = rope_parameters(config, "full_attention")
    sliding = rope_parameters(config, "sliding_attention")
    writer.add_rope_freq_base(full["rope_theta"])
    writer.add_rope_freq_base_swa(sliding["rope_theta"])
    if full["rope_type"] == "linear":  # the larger Gemma 3 models stretch the global layers only, as HF does
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(full["factor"])
    elif full["rope_type"] != "default":
        raise UsageError(f"config.json: Gemma 3 rope_type {full['rope_type']!r} is not supported for GGUF export.")
    if sliding["rope_type"] != "default":
        raise UsageError(f"config.json: sliding-window rope_type {sliding['rope_type']!r} is not supported.")
    sliding_layers = [t == "sliding_attention" for t in _gemma3_layer_types(config)]
    if not any(sliding_layers) or not config.get("sliding_window"):
        raise UsageError("config.json: a Gemma 3 model without sliding-window layers crashes llama.cpp; not exported.")
    writer.add_sliding_window(config["sliding_window"])
    # Per layer rather than llama.cpp's built-in "every 6th layer is global", so any layout converts faithfully.
    writer.add_sliding_window_pattern(sliding_layers)


def _add_llama_metadata(writer, config: dict, arch: str) -> None:
    """Llama and Qwen2 share llama.cpp's hyperparameters; Qwen2 adds q/k/v biases (plain tensors) and no permute."""
    import gguf

    if config.get("use_sliding_window"):
        raise UsageError("config.json: use_sliding_window=true is not supported by llama.cpp's Qwen2; not exported.")
    head_dim = _head_dim(config)
    _add_shared_metadata(writer, config)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // config["num_attention_heads"]:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    rope = rope_parameters(config)
    writer.add_rope_freq_base(rope["rope_theta"])
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    elif rope["rope_type"] != "default" and not (arch == "llama" and rope["rope_type"] == "llama3"):
        # (llama3 scaling travels as the rope_freqs tensor)
        raise UsageError(f"config.json: {arch} rope_type {rope['rope_type']!r} is not supported for GGUF export.")


# --- tokenizer ------------------------------------------------------------------------------------------------


def gguf_vocab(tokenizer, vocab_size: int) -> GgufVocab:
    """Translate an HF (tokenizers-backed) tokenizer into llama.cpp's vocabulary, padded to the embedding rows."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise UsageError(f"tokenizer.json: a {model.get('type')} tokenizer cannot be exported to GGUF yet (BPE only).")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    id_to_token: dict[int, str] = {}
    for token, i in model["vocab"].items():  # first name wins: converters alias "\t" to the id of "<0x09>"
        id_to_token.setdefault(i, token)
    added = tokenizer.added_tokens_decoder
    id_to_token.update({i: t.content for i, t in added.items()})
    if max(id_to_token) >= vocab_size:
        raise UsageError(
            f"tokenizer has token id {max(id_to_token)} but config.json vocab_size is {vocab_size}; "
            "resize the model's embeddings to the tokenizer before exporting."
        )
    if model.get("byte_fallback"):
        return _sentencepiece_vocab(spec, id_to_token, added, merges, vocab_size)
    if _find(spec.get("pre_tokenizer"), "ByteLevel") is not None:
        return _byte_level_vocab(spec, id_to_token, added, merges, vocab_size)
    raise UsageError(
        "tokenizer.json: a BPE tokenizer without byte fallback or byte-level pre-tokenizer is not supported."
    )


def _sentencepiece_vocab(spec, id_to_token, added, merges, vocab_size) -> GgufVocab:
    """SentencePiece-style BPE (Gemma, Llama 2): llama.cpp merges the adjacent pair whose result scores highest.

    HF keeps only the merge order, so a token's score is minus the rank of the first merge that produces it; tokens
    no merge produces rank last.
    """
    import gguf

    first_rank: dict[str, int] = {}
    for rank, merge in enumerate(merges):
        first_rank.setdefault(merge.replace(" ", "", 1), rank)
    tokens, types, scores = [], [], []
    for i in range(vocab_size):
        token = id_to_token.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]"), types.append(gguf.TokenType.UNUSED), scores.append(-1000.0)
        elif i in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
            scores.append(-1000.0)
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            tokens.append(token), types.append(gguf.TokenType.BYTE), scores.append(0.0)
        else:
            tokens.append(token), types.append(gguf.TokenType.NORMAL)
            scores.append(-float(first_rank.get(token, len(merges) + i)))
    return GgufVocab(
        model="llama",
        pre="default",
        tokens=tokens,
        types=[int(t) for t in types],
        scores=scores,
        add_space_prefix=_adds_space_prefix(spec),
    )


def _adds_space_prefix(spec: dict) -> bool:
    """Llama 2 style tokenizers prepend "▁" to the text; Gemma's do not."""
    prepend = _find(spec.get("normalizer"), "Prepend")
    metaspace = _find(spec.get("pre_tokenizer"), "Metaspace")
    return prepend is not None or (metaspace is not None and metaspace.get("prepend_scheme", "always") != "never")


def _byte_level_vocab(spec, id_to_token, added, merges, vocab_size) -> GgufVocab:
    """GPT-2 style byte-level BPE (Llama 3): tokens in byte-to-unicode form, ranked by the merge list."""
    import gguf

    split = _find(spec.get("pre_tokenizer"), "Split")
    regex = (split or {}).get("pattern", {}).get("Regex")
    if regex not in KNOWN_PRETOKENIZERS:
        raise UsageError(
            f"tokenizer.json: unknown pre-tokenizer regex {regex!r}; GGUF export knows the Llama 3 one only."
        )
    tokens, types = [], []
    for i in range(vocab_size):
        token = id_to_token.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]"), types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token), types.append(gguf.TokenType.NORMAL)
    return GgufVocab(
        model="gpt2", pre=KNOWN_PRETOKENIZERS[regex], tokens=tokens, types=[int(t) for t in types], merges=merges
    )


def _find(component: dict | None, type_name: str) -> dict | None:
    """The first tokenizers component of a type, looking inside Sequence components."""
    if not component:
        return None
    if component.get("type") == type_name:
        return component
    for child in component.get("normalizers", []) + component.get("pretokenizers", []):
        if (found := _find(child, type_name)) is not None:
            return found
    return None


def _add_tokenizer_metadata(writer, tokenizer, vocab: GgufVocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)

    ids = {
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "unk": tokenizer.unk_token_id,
        "pad": tokenizer.pad_token_id,
    }
    setters = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unk": writer.add_unk_token_id,
        "pad": writer.add_pad_token_id,
    }
    for role, token_id in ids.items():
        if token_id is not None:
            setters[role](token_id)
    vocab_ids = tokenizer.get_vocab()
    end_of_turn = next((t for t in END_OF_TURN_TOKENS if t in vocab_ids), None)
    if end_of_turn is not None:
        writer.add_eot_token_id(vocab_ids[end_of_turn])

    # What the tokenizer adds around a text, read from its behaviour rather than from config flags.
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("a", add_special_tokens=True)["input_ids"]
    added_some = len(wrapped) > len(plain)
    writer.add_add_bos_token(added_some and ids["bos"] is not None and wrapped[0] == ids["bos"])
    writer.add_add_eos_token(added_some and ids["eos"] is not None and wrapped[-1] == ids["eos"])

    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if template:
        writer.add_chat_template(template)


# --- tensors --------------------------------------------------------------------------------------------------


def _gguf_tensors(hf_dir: Path, arch: str, config: dict) -> Iterator[tuple[str, Any]]:
    """(GGUF name, float32 torch tensor) for every weight llama.cpp needs, transformed to its conventions."""
    for name, load in gguf_tensor_sources(hf_dir, arch, config).items():
        yield name, load()


def gguf_tensor_sources(hf_dir: Path, arch: str, config: dict) -> dict[str, Callable[[], Any]]:
    """GGUF tensor name -> a function loading that weight (float32, llama.cpp layout), so callers can compare two
    models tensor by tensor without holding either in memory."""
    import gguf
    from safetensors import safe_open

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise UsageError(f"{hf_dir}: no *.safetensors weights to export.")
    model_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    names = gguf.get_tensor_name_map(model_arch, config["num_hidden_layers"])

    def loader(file: Path, hf_name: str, name: str):
        def load():
            with safe_open(file, framework="pt") as f:
                return to_llama_cpp_layout(arch, name, f.get_tensor(hf_name).float(), config)

        return load

    sources: dict[str, Callable[[], Any]] = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for hf_name in f.keys():  # noqa: SIM118 - safe_open handles are not iterable
                name = _language_model_name(hf_name)
                if name is None or name.endswith("rotary_emb.inv_freq"):
                    continue
                if name == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # llama.cpp reuses token_embd
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise UsageError(f"{file.name}: tensor {hf_name} has no GGUF equivalent for {arch}.")
                sources[gguf_name] = loader(file, hf_name, name)
    if arch == "llama" and rope_parameters(config)["rope_type"] == "llama3":
        sources[gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"] = lambda: llama3_rope_factors(config)
    return sources


def _language_model_name(name: str) -> str | None:
    """Tensor name within the language model (multimodal Gemma 3 nests it); None for vision weights."""
    for prefix in ("model.language_model.", "language_model.model."):
        if name.startswith(prefix):
            return "model." + name[len(prefix) :]
    if name.startswith("language_model."):
        return name[len("language_model.") :]
    if any(part in name for part in ("vision_tower.", "multi_modal_projector.", "vision_model.")):
        return None
    return name


def to_llama_cpp_layout(arch: str, name: str, tensor, config: dict):
    if arch == "gemma3" and name.endswith("norm.weight"):
        return tensor + 1.0  # Gemma's RMSNorm computes x * (1 + w); llama.cpp's computes x * w
    if arch == "llama" and name.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight")):
        # HF rotates halves of each head, llama.cpp rotates interleaved pairs: reorder the rows to match.
        n_head = config["num_attention_heads"]
        if name.endswith("k_proj.weight"):
            n_head = config.get("num_key_value_heads", n_head)
        return (
            tensor.reshape(n_head, 2, tensor.shape[0] // n_head // 2, *tensor.shape[1:])
            .swapaxes(1, 2)
            .reshape(tensor.shape)
        )
    return tensor


def llama3_rope_factors(config: dict):
    """Per-frequency divisors for Llama 3.1+ RoPE scaling, as llama.cpp's rope_freqs tensor holds them."""
    import torch

    rope = rope_parameters(config)
    dim = _head_dim(config)
    freqs = 1.0 / (rope["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
    factors = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            factors.append(1.0)
        elif wavelen > low_freq_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def _add_tensor(writer, name: str, tensor, dtype: str) -> None:
    """Store 1-D tensors (norms, rope factors) as f32 as llama.cpp expects, the rest in the requested dtype."""
    import gguf

    qtypes = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "bf16": gguf.GGMLQuantizationType.BF16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
    }
    qtype = qtypes[dtype] if tensor.ndim > 1 else gguf.GGMLQuantizationType.F32
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    if tensor.shape[-1] % block_size != 0:
        qtype = gguf.GGMLQuantizationType.F16
    data = gguf.quants.quantize(tensor.numpy().astype(np.float32, copy=False), qtype)
    writer.add_tensor(name, data, raw_dtype=qtype)
