"""Make a resolved model available as a local HF-format directory: assemble, convert or download it once."""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from finch import __version__
from finch.errors import FinchError, UsageError
from finch.models.builtin import builtin_model
from finch.models.chat_format import native_chat_format
from finch.models.resolve import MARKER, ResolvedModel
from finch.progress import stages

CONVERT_STAGES = [
    ("reading the GGUF", 2.0),
    ("converting the tokenizer", 20.0),
    ("dequantising the weights", 30.0),
    ("writing bf16 safetensors", 5.0),
]


def prepare_model(model: ResolvedModel) -> Path:
    """Return the model's HF-format directory, creating it on first use."""
    if model.kind == "adapter":
        assert model.base is not None
        return prepare_model(model.base)
    if not model.needs_preparing:
        assert model.path is not None
        return model.path
    assert model.path is not None
    if model.kind == "builtin":
        assert model.gguf is not None
        gguf = ensure_builtin_gguf(model.name, model.gguf)
        convert_gguf_to_hf(gguf, model.path, name=model.name, kind="builtin")
    elif model.kind == "gguf":
        assert model.gguf is not None
        convert_gguf_to_hf(model.gguf, model.path, name=model.name, kind="gguf")
    elif model.kind == "hub":
        download_from_hub(model.name, model.path)
    return model.path


def ready_model(model: ResolvedModel) -> Path:
    """What a model is used from once prepared: a GGUF-only built-in's GGUF (the teacher runs on llama.cpp as it is),
    else its HF-format directory."""
    builtin = builtin_model(model.name) if model.kind == "builtin" else None
    if builtin and builtin.gguf_only:
        assert model.gguf is not None
        return ensure_builtin_gguf(model.name, model.gguf)
    return prepare_model(model)


def ensure_builtin_gguf(name: str, target: Path) -> Path:
    builtin = builtin_model(name)
    assert builtin is not None
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        builtin.assemble(partial)
        os.replace(partial, target)
    except (OSError, ValueError) as e:
        raise FinchError(f"could not assemble the built-in model {name}: {e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _write_marker(folder: Path, **fields) -> None:
    data = {"finch_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}
    (folder / MARKER).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def convert_gguf_to_hf(gguf: Path, out_dir: Path, name: str, kind: str) -> None:
    """Dequantise a GGUF into a standard HF directory (bf16 safetensors, tokenizer, chat template, EOS).

    transformers refuses save_pretrained on a model loaded with gguf_file=, so the weights are moved into a fresh
    model built from the same config, minus the quantization_config that would make loaders expect a GGUF.
    """
    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_loading
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # The GGUF loader draws its own tqdm bar that ignores disable_progress_bar(); finch's stage bar replaces it.
    gguf_loading.tqdm = lambda iterable, **_: iterable
    folder, filename = str(gguf.parent), gguf.name
    partial = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with stages(f"Preparing {name} (once)", CONVERT_STAGES) as stage, _gguf_read_once():
            stage("reading the GGUF")
            try:
                config = AutoConfig.from_pretrained(folder, gguf_file=filename)
            except (ValueError, KeyError) as e:
                raise UsageError(f"{gguf}: transformers cannot read this GGUF ({e}).") from None
            restore_from_gguf_metadata(config, gguf)
            stage("converting the tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
            stage("dequantising the weights")
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
            stage("writing bf16 safetensors")
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            config.dtype = torch.bfloat16
            with torch.device("meta"):
                fresh = AutoModelForCausalLM.from_config(config)
            fresh.load_state_dict(loaded.state_dict(), assign=True)
            fresh.tie_weights()
            fresh = fresh.to(torch.bfloat16)
            del loaded

            chat_format = None
            if not tokenizer.chat_template:
                fmt = native_chat_format(config.model_type, tokenizer.get_vocab())
                tokenizer.chat_template = fmt.template
                chat_format = fmt.name
                eos = [tokenizer.eos_token_id]
                if fmt.end_of_turn:
                    eos.append(tokenizer.convert_tokens_to_ids(fmt.end_of_turn))
                fresh.generation_config.eos_token_id = eos
            fresh.generation_config.bos_token_id = tokenizer.bos_token_id
            fresh.generation_config.pad_token_id = tokenizer.pad_token_id
            fresh.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            _write_marker(partial, name=name, kind=kind, source=str(gguf), native_chat_format=chat_format)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def _gguf_read_once():
    """transformers reads the GGUF anew for the config (twice), the tokenizer and the weights, and gguf-py's reader
    parses the whole vocabulary each time (~20 s for Gemma's 262k tokens on 2 cores): hand it one reader per file
    while converting. The readers are read-only memory maps."""
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], object] = {}

    def read_once(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = read_once
    try:
        yield
    finally:
        gguf.GGUFReader = original


def restore_from_gguf_metadata(config, gguf: Path) -> None:
    """Put back what transformers' GGUF config reader drops, so the HF model computes what llama.cpp computes."""
    from finch.models.gguf_file import read_gguf

    header = read_gguf(gguf)
    arch = header.fields["general.architecture"]

    def value(key: str):
        return header.fields.get(f"{arch}.{key}")

    if arch == "gemma3":
        head_dim = value("attention.key_length")
        if head_dim:  # llama.cpp scales queries by 1/sqrt(head_dim) (all sizes but 27B); transformers assumes 256
            config.query_pre_attn_scalar = head_dim
        pattern = value("attention.sliding_window_pattern")
        if pattern:
            config.layer_types = ["sliding_attention" if sliding else "full_attention" for sliding in pattern]
        swa_base = value("rope.freq_base_swa")
        if swa_base and isinstance(getattr(config, "rope_parameters", None), dict):
            config.rope_parameters.setdefault("sliding_attention", {"rope_type": "default"})["rope_theta"] = swa_base
    if any(t.name == "rope_freqs.weight" for t in header.tensors):
        raise UsageError(
            f"{gguf}: uses Llama 3 style RoPE scaling (a rope_freqs tensor), which cannot be restored from a GGUF for "
            "transformers; chat and serve it with llama.cpp, or pass the original HF model directory for training."
        )


HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def download_from_hub(repo_id: str, out_dir: Path) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    partial = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    hint = "pass a local path instead (an HF directory or a .gguf), e.g. --model ./my-model"
    try:
        snapshot_download(repo_id, local_dir=partial, allow_patterns=HUB_PATTERNS)
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as e:
        raise FinchError(f"cannot download {repo_id}: offline ({type(e).__name__}); {hint}.") from None
    except RepositoryNotFoundError:
        raise FinchError(f"cannot download {repo_id}: no such repository on the Hugging Face Hub.") from None
    except GatedRepoError:
        raise FinchError(f"cannot download {repo_id}: the repository is gated; run `hf auth login`.") from None
    except Exception as e:  # the network layer raises many types; each means "could not fetch"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FinchError(f"cannot download {repo_id}: {reason}; {hint}.") from None
    else:
        if not (partial / "config.json").is_file():
            shutil.rmtree(partial, ignore_errors=True)
            raise FinchError(f"{repo_id} has no config.json: not a transformers model finch can use.")
        shutil.rmtree(partial / ".cache", ignore_errors=True)
        _write_marker(partial, name=repo_id, kind="hub", source=f"https://huggingface.co/{repo_id}")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
