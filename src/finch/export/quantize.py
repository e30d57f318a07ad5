"""K-quants through llama.cpp's own quantiser, from an f16 GGUF."""

from __future__ import annotations

import os
from pathlib import Path

from finch.errors import FinchError

LLAMA_CPP_QUANTS = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
                    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M"}  # fmt: skip


def quantize_gguf(source: Path, target: Path, quant: str) -> Path:
    import llama_cpp

    from finch.inference.llama_cpp_backend import quiet_llama_logs

    quiet_llama_logs()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_CPP_QUANTS[quant])
    params.nthread = os.cpu_count() or 1
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
        if status != 0:
            raise FinchError(f"llama.cpp could not quantize {source} to {quant} (status {status}).")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
