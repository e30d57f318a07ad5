"""K-quants through llama.cpp's own quantiser, from an f16 GGUF, checked to keep what fine-tuning changed.

A base that itself came from a quantized GGUF (the built-in Gemma 3 270M is Q4_K_M) has weights that already sit
on that quantization grid. Re-quantizing a fine-tune of it to the same type rounds most of the small fine-tuning
changes straight back onto the grid: measured on the quickstart run, q4_k_m kept 2-12% of the change in its
Q5_0/Q4_K tensors and the export answered like the untuned model, while q8_0 kept 99%. So after quantizing, finch
measures per changed tensor how much of the change survived, and moves the tensors that lost most of it to the
next finer type, until they keep at least MIN_KEPT of it. A base that never was quantized keeps ~100% on average
(rounding is unbiased), so nothing moves there.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finch.errors import FinchError
from finch.models.gguf_file import read_gguf

LLAMA_CPP_QUANTS = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
}
MIN_KEPT = 0.5  # share of a tensor's fine-tuning change its quantized form must keep
# Finer types to move a tensor to, by bits per weight; each is a different grid from the types below it.
FINER_TYPES = ("Q4_1", "Q5_1", "Q5_K", "Q6_K", "Q8_0")
ROUNDS = 3


@dataclass
class QuantizeReport:
    path: Path
    kept: dict[str, float] = field(default_factory=dict)  # changed tensor -> share of its change kept
    moved: dict[str, str] = field(default_factory=dict)  # tensor -> the finer type it was written as

    def summary(self) -> str | None:
        if not self.kept:
            return None
        worst = min(self.kept.values())
        text = f"{len(self.kept)} fine-tuned tensors keep ≥ {worst:.0%} of their change"
        if self.moved:
            counts: dict[str, int] = {}
            for qtype in self.moved.values():
                counts[qtype] = counts.get(qtype, 0) + 1
            moved = ", ".join(f"{n} to {t}" for t, n in sorted(counts.items()))
            text += (
                f"; {len(self.moved)} moved to finer types ({moved}) because the base's own quantization grid "
                "rounded their change away"
            )
        return text


def quantize_gguf(source: Path, target: Path, quant: str, overrides: dict[str, str] | None = None) -> Path:
    """llama.cpp's quantiser; `overrides` maps exact tensor names to the ggml type to write them as."""
    import gguf
    import llama_cpp

    from finch.inference.llama_cpp_backend import quiet_llama_logs

    quiet_llama_logs()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_CPP_QUANTS[quant])
    params.nthread = os.cpu_count() or 1
    patterns = []  # kept referenced until the call returns
    if overrides:
        table = (llama_cpp.llama_model_tensor_override * (len(overrides) + 1))()  # ends with a null pattern
        for i, (name, qtype) in enumerate(sorted(overrides.items())):
            patterns.append(("^" + name.replace(".", r"\.") + "$").encode())
            table[i].pattern = patterns[-1]
            table[i].type = int(gguf.GGMLQuantizationType[qtype])
        params.tt_overrides = ctypes.cast(table, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
        if status != 0:
            raise FinchError(f"llama.cpp could not quantize {source} to {quant} (status {status}).")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def quantize_keeping_changes(
    source: Path,
    target: Path,
    quant: str,
    base: dict[str, Callable],
    tuned: dict[str, Callable],
    min_kept: float = MIN_KEPT,
) -> QuantizeReport:
    """Quantize `source` (the tuned model as f16 GGUF) so every tensor that differs between `base` and `tuned`
    (GGUF name -> loader, as gguf_writer.gguf_tensor_sources gives) keeps ≥ min_kept of its change."""
    changed = [n for n, load in tuned.items() if n in base and _is_matrix_change(base[n](), load())]
    report = QuantizeReport(target)
    overrides: dict[str, str] = {}
    first_types: dict[str, str] = {}
    for round_ in range(ROUNDS):
        quantize_gguf(source, target, quant, overrides)
        report.kept = kept_shares(target, changed, base, tuned)
        lost = [n for n in changed if report.kept[n] < min_kept]
        if not lost or round_ == ROUNDS - 1:
            break
        qtypes, row_lengths = _tensor_layout(target)
        first_types = first_types or qtypes
        # Pin every changed tensor: llama.cpp's mixes (q4_k_m's "more bits for some ffn_down layers") count the
        # tensors they choose for, so moving one tensor would otherwise shift another one's type.
        overrides = {n: overrides.get(n, qtypes[n]) for n in changed}
        for name in lost:
            finer = _finer_type(qtypes[name], row_lengths[name]) if round_ == 0 else "Q8_0"
            overrides[name] = finer or qtypes[name]
    written, _ = _tensor_layout(target)
    report.moved = {n: written[n] for n in changed if n in first_types and written[n] != first_types[n]}
    return report


def _is_matrix_change(before, after) -> bool:
    return before.ndim > 1 and before.shape == after.shape and not bool((before == after).all())


def kept_shares(gguf_path: Path, names: list[str], base: dict, tuned: dict) -> dict[str, float]:
    """Per tensor: the projection of (quantized − base) on (tuned − base), as a share of the change."""
    from gguf.quants import dequantize

    tensors = {t.name: t for t in read_gguf(gguf_path).tensors}
    shares = {}
    for name in names:
        before = base[name]().numpy()
        change = tuned[name]().numpy() - before
        t = tensors[name]
        quantized = dequantize(t.data, t.tensor_type).reshape(change.shape).astype(np.float32)
        denominator = float((change.astype(np.float64) ** 2).sum())
        shares[name] = float(((quantized - before).astype(np.float64) * change).sum() / denominator)
    return shares


def _tensor_layout(gguf_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Each tensor's type and row length (GGUF shapes start with ne0)."""
    tensors = read_gguf(gguf_path).tensors
    return {t.name: t.tensor_type.name for t in tensors}, {t.name: int(t.shape[0]) for t in tensors}


def _finer_type(current: str, row_length: int) -> str | None:
    """The next type up in bits per weight whose blocks fit the rows (K-quants need multiples of 256)."""
    import gguf

    def bits(qtype: str) -> float:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
        return size * 8 / block

    if current in ("F32", "F16", "BF16") or current not in gguf.GGMLQuantizationType.__members__:
        return None
    fitting = [t for t in FINER_TYPES if row_length % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[t]][0] == 0]
    return next((t for t in fitting if bits(t) > bits(current)), None)
