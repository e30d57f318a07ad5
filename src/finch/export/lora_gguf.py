"""A PEFT LoRA adapter as a GGUF LoRA that llama.cpp applies to its base at load time (`--lora`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from finch.errors import UsageError
from finch.export.gguf_writer import SUPPORTED_MODEL_TYPES, read_text_config, to_llama_cpp_layout


def write_gguf_lora(adapter_dir: Path, base_dir: Path, out_path: Path) -> Path:
    """lora_A → `<tensor>.lora_a` [r, in], lora_B → `<tensor>.lora_b` [out, r], in llama.cpp's tensor names.

    Llama's q/k rows are permuted in llama.cpp's layout, so lora_B (which produces those rows) is permuted too.
    """
    import gguf
    import numpy as np
    from safetensors import safe_open

    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if adapter_config.get("use_dora") or adapter_config.get("use_rslora"):
        raise UsageError(
            f"{adapter_dir}: DoRA / rsLoRA adapters cannot be exported as a GGUF LoRA; export gguf instead."
        )
    config = read_text_config(base_dir)
    arch = SUPPORTED_MODEL_TYPES[config["model_type"]]
    model_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    names = gguf.get_tensor_name_map(model_arch, config["num_hidden_layers"])

    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_string(gguf.Keys.General.TYPE, "adapter")
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(adapter_config.get("lora_alpha", adapter_config["r"])))
    pairs: dict[str, dict[str, object]] = {}
    with safe_open(adapter_dir / "adapter_model.safetensors", framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open handles are not iterable
            if ".lora_A." not in key and ".lora_B." not in key:
                raise UsageError(f"{adapter_dir}: tensor {key} is not a LoRA A/B matrix; export gguf instead.")
            module = key.removeprefix("base_model.model.").split(".lora_")[0]  # model.layers.0.self_attn.q_proj
            pairs.setdefault(module, {})["a" if ".lora_A." in key else "b"] = f.get_tensor(key).float()
    try:
        for module, pair in sorted(pairs.items()):
            gguf_name = names.get_name(module + ".weight", try_suffixes=(".weight",))
            if gguf_name is None:
                raise UsageError(f"{adapter_dir}: LoRA on {module} has no llama.cpp equivalent for {arch}.")
            lora_b = to_llama_cpp_layout(arch, module + ".weight", pair["b"], config)
            writer.add_tensor(f"{gguf_name}.lora_a", pair["a"].numpy().astype(np.float32))
            writer.add_tensor(f"{gguf_name}.lora_b", lora_b.numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    return out_path
