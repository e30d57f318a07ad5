"""Merge a LoRA adapter into its base and save a standard HF directory that transformers and vLLM load."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from finch.errors import UsageError
from finch.models.resolve import ResolvedModel


def merge_adapter(model: ResolvedModel, base_dir: Path, out_dir: Path) -> Path:
    """Base weights + LoRA deltas, saved in the base's dtype with tokenizer, chat template and generation config.

    The tokenizer and chat template come from the adapter's run directory when training saved them there (they are
    what the model was tuned on), else from the base.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars are noise in finch's output
    if model.adapter is None:
        raise UsageError(f"{model.ref}: not a LoRA adapter or run directory; nothing to merge.")
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    stored_dtype = getattr(torch, str(config.get("dtype") or config.get("torch_dtype") or "float32"))
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)  # merge in fp32, store as the base
    merged = PeftModel.from_pretrained(base, model.adapter).merge_and_unload().to(stored_dtype)
    tokenizer_source = model.adapter if (model.adapter / "tokenizer_config.json").is_file() else base_dir
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if not tokenizer.chat_template:
        tokenizer.chat_template = AutoTokenizer.from_pretrained(base_dir).chat_template
    merged.generation_config = GenerationConfig.from_pretrained(base_dir)

    partial = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        merged.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out_dir
