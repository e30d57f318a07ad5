"""A GGUF file's metadata and tensor table, read in well under a second.

gguf-py's GGUFReader makes a numpy view for every part of every field, so the 262k-token vocabulary of the built-in
Gemma (tokens, scores, types) took it ~20 s per file on a 2-core CPU, and an export read its output six times. Here
numeric arrays are one `frombuffer` each, strings are decoded in one tight loop, and tensors are views into a
memory map shaped as GGUFReader shapes them (what gguf.quants.dequantize expects). Little-endian files (every file
llama.cpp and finch write) only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finch.errors import UsageError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
_STRING, _ARRAY = 8, 9
_SCALARS = {  # GGUF value type -> numpy dtype
    0: np.uint8,
    1: np.int8,
    2: np.uint16,
    3: np.int16,
    4: np.uint32,
    5: np.int32,
    6: np.float32,
    7: np.bool_,
    10: np.uint64,
    11: np.int64,
    12: np.float64,
}
_PLAIN_TENSOR_TYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I8": np.int8, "I16": np.int16}
_PLAIN_TENSOR_TYPES |= {"I32": np.int32, "I64": np.int64}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    tensor_type: Any  # gguf.GGMLQuantizationType
    shape: tuple[int, ...]  # GGUF order: ne0 (the row length) first
    n_elements: int
    data: np.ndarray  # a view into the file: [rows..., row bytes] for quantized types, as GGUFReader gives


@dataclass
class GGUFFile:
    path: Path
    version: int
    fields: dict[str, Any] = field(default_factory=dict)  # key -> int | float | bool | str | list
    tensors: list[GGUFTensor] = field(default_factory=list)


def read_gguf(path: Path | str) -> GGUFFile:
    """The metadata (values as Python objects) and tensors (memory-mapped) of a GGUF file."""
    path = Path(path)
    try:
        return _read(path)
    except (struct.error, ValueError, KeyError) as e:  # strings decode with errors="replace"
        raise UsageError(f"{path}: truncated or corrupt GGUF ({e}); download or export it again.") from None


def _read(path: Path) -> GGUFFile:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    buffer = np.memmap(path, dtype=np.uint8, mode="r")
    raw = memoryview(buffer)
    if bytes(raw[:4]) != MAGIC:
        raise UsageError(f"{path}: not a GGUF file (it does not start with 'GGUF'); pass a .gguf that llama.cpp wrote.")
    version, n_tensors, n_fields = struct.unpack_from("<IQQ", raw, 4)
    if version not in (2, 3):
        raise UsageError(f"{path}: GGUF version {version} is not supported (2 or 3 are); re-export it with llama.cpp.")
    reader = _Cursor(raw, buffer, 24)
    result = GGUFFile(path, version)
    for _ in range(n_fields):
        key = reader.string()
        result.fields[key] = reader.value(reader.u32())
    infos = []
    for _ in range(n_tensors):
        name = reader.string()
        n_dims = reader.u32()
        shape = tuple(int(d) for d in reader.array_of(np.uint64, n_dims))
        infos.append((name, shape, reader.u32(), reader.u64()))
    alignment = int(result.fields.get("general.alignment", DEFAULT_ALIGNMENT))
    data_start = -(-reader.offset // alignment) * alignment
    for name, shape, type_id, offset in infos:
        qtype = GGMLQuantizationType(type_id)
        n_elements = int(np.prod(shape, dtype=np.int64)) if shape else 1
        dims = tuple(reversed(shape))
        start = data_start + offset
        if qtype.name in _PLAIN_TENSOR_TYPES:
            dtype = np.dtype(_PLAIN_TENSOR_TYPES[qtype.name])
            data = buffer[start : start + n_elements * dtype.itemsize].view(dtype).reshape(dims)  # short: ValueError
        else:
            block, type_size = GGML_QUANT_SIZES[qtype]
            n_bytes = n_elements * type_size // block
            data = buffer[start : start + n_bytes].reshape((*dims[:-1], dims[-1] // block * type_size))
        result.tensors.append(GGUFTensor(name, qtype, shape, n_elements, data))
    return result


class _Cursor:
    """Reads GGUF values at a moving offset."""

    def __init__(self, raw: memoryview, buffer: np.ndarray, offset: int):
        self.raw, self.buffer, self.offset = raw, buffer, offset

    def u32(self) -> int:
        (value,) = struct.unpack_from("<I", self.raw, self.offset)
        self.offset += 4
        return value

    def u64(self) -> int:
        (value,) = struct.unpack_from("<Q", self.raw, self.offset)
        self.offset += 8
        return value

    def string(self) -> str:
        length = self.u64()
        text = str(self.raw[self.offset : self.offset + length], "utf-8", errors="replace")
        self.offset += length
        return text

    def array_of(self, dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        values = self.buffer[self.offset : self.offset + size].view(np.dtype(dtype).newbyteorder("<"))
        self.offset += size
        return values

    def value(self, value_type: int) -> Any:
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            item_type, count = self.u32(), self.u64()
            if item_type == _STRING:
                return [self.string() for _ in range(count)]
            if item_type == _ARRAY:
                return [self.value(_ARRAY) for _ in range(count)]
            return self.array_of(_SCALARS[item_type], count).tolist()
        return self.array_of(_SCALARS[value_type], 1).tolist()[0]
