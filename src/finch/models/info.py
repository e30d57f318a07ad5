"""Facts about a prepared model, read from its files: no weights are loaded, so this takes milliseconds."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from finch.models.chat_format import native_chat_format
from finch.models.resolve import MARKER, ResolvedModel


@dataclass
class ModelInfo:
    name: str
    kind: str
    architecture: str
    model_type: str
    parameters: int
    context_length: int | None
    vocab_size: int | None
    dtype: str | None
    chat_template: bool
    chat_format: str  # the model's own template, or the family turn format finch uses instead
    path: str  # the local HF-format directory
    size_bytes: int
    gguf: str | None = None
    adapter: str | None = None
    adapter_rank: int | None = None
    adapter_targets: list[str] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def safetensors_header(path: Path) -> dict:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def count_parameters(folder: Path) -> tuple[int, str | None]:
    total, dtypes = 0, set()
    for file in sorted(folder.glob("*.safetensors")):
        for name, entry in safetensors_header(file).items():
            if name != "__metadata__":
                total += math.prod(entry["shape"])
                dtypes.add(entry["dtype"])
    return total, ",".join(sorted(dtypes)) or None


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file():
        return True
    tok_config = folder / "tokenizer_config.json"
    if tok_config.is_file():
        return bool(json.loads(tok_config.read_text(encoding="utf-8")).get("chat_template"))
    return False


def _special_tokens(folder: Path) -> set[str]:
    """Added/special tokens, enough to recognise a family's turn format without loading the tokenizer."""
    tokens: set[str] = set()
    tok_json = folder / "tokenizer.json"
    if tok_json.is_file():
        data = json.loads(tok_json.read_text(encoding="utf-8"))
        tokens |= {t["content"] for t in data.get("added_tokens", [])}
    tok_config = folder / "tokenizer_config.json"
    if tok_config.is_file():
        data = json.loads(tok_config.read_text(encoding="utf-8"))
        tokens |= {t["content"] for t in data.get("added_tokens_decoder", {}).values()}
    return tokens


def model_info(model: ResolvedModel, hf_dir: Path) -> ModelInfo:
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") or config
    params, dtype = count_parameters(hf_dir)
    marker = hf_dir / MARKER
    has_template = _has_chat_template(hf_dir)
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("native_chat_format"):
        chat_format = f"{json.loads(marker.read_text(encoding='utf-8'))['native_chat_format']} (finch default)"
    elif has_template:
        chat_format = "the model's own template"
    else:
        fmt = native_chat_format(config.get("model_type", ""), _special_tokens(hf_dir))
        chat_format = f"{fmt.name} (finch default)"
    info = ModelInfo(
        name=model.name,
        kind=model.kind,
        architecture=(config.get("architectures") or ["?"])[0],
        model_type=config.get("model_type", "?"),
        parameters=params,
        context_length=text.get("max_position_embeddings"),
        vocab_size=text.get("vocab_size"),
        dtype=config.get("dtype") or config.get("torch_dtype") or dtype,
        chat_template=has_template,
        chat_format=chat_format,
        path=str(hf_dir),
        size_bytes=folder_size(hf_dir),
        gguf=str(model.gguf) if model.gguf else None,
    )
    if model.adapter:
        adapter_config = json.loads((model.adapter / "adapter_config.json").read_text(encoding="utf-8"))
        info.adapter = str(model.adapter)
        info.adapter_rank = adapter_config.get("r")
        targets = adapter_config.get("target_modules")
        info.adapter_targets = sorted(targets) if isinstance(targets, list) else [str(targets)]
    return info


def gguf_model_info(model: ResolvedModel, gguf: Path) -> ModelInfo:
    """Facts read from a GGUF's header, for a model llama.cpp runs as it is (the built-in teacher): converting 1.5B
    weights to an HF directory just to describe them would take minutes and gigabytes."""
    from finch.models.gguf_file import read_gguf

    header = read_gguf(gguf)
    field = header.fields.get
    arch = field("general.architecture") or "?"
    tokens = field("tokenizer.ggml.tokens")
    has_template = field("tokenizer.chat_template") is not None
    return ModelInfo(
        name=model.name,
        kind=model.kind,
        architecture=f"{arch} (GGUF)",
        model_type=arch,
        parameters=sum(t.n_elements for t in header.tensors),
        context_length=field(f"{arch}.context_length"),
        vocab_size=len(tokens) if tokens is not None else None,
        dtype=_GGUF_FILE_TYPES.get(field("general.file_type"), "quantized"),
        chat_template=has_template,
        chat_format="the model's own template" if has_template else "none",
        path=str(gguf),
        size_bytes=gguf.stat().st_size,
        gguf=str(gguf),
    )


_GGUF_FILE_TYPES = {0: "F32", 1: "F16", 7: "Q8_0", 15: "Q4_K_M", 17: "Q5_K_M", 32: "BF16"}
