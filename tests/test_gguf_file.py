"""finch's GGUF header reader gives what gguf-py's GGUFReader gives (fields, tensor table, tensor bytes), on files
finch's writer and llama.cpp's quantiser wrote, and one clear error for a file that is not a whole GGUF."""

from __future__ import annotations

import numpy as np
import pytest

from finch.errors import UsageError
from finch.export import write_gguf
from finch.export.quantize import quantize_gguf
from finch.models.gguf_file import read_gguf


def assert_same_as_gguf_py(path) -> None:
    from gguf import GGUFReader

    reference = GGUFReader(path)
    header = read_gguf(path)
    expected = {k: f.contents() for k, f in reference.fields.items() if not k.startswith("GGUF.")}
    assert header.fields == expected
    assert [t.name for t in header.tensors] == [t.name for t in reference.tensors]
    for ours, theirs in zip(header.tensors, reference.tensors):
        assert ours.tensor_type == theirs.tensor_type, ours.name
        assert ours.shape == tuple(int(d) for d in theirs.shape) and ours.n_elements == theirs.n_elements
        assert ours.data.dtype == theirs.data.dtype and ours.data.shape == theirs.data.shape, ours.name
        assert np.array_equal(ours.data, theirs.data), ours.name


@pytest.mark.parametrize("dtype", ["f32", "bf16", "q8_0"])
def test_reads_what_finchs_writer_wrote(tiny_llama_dir, tmp_path, dtype):
    assert_same_as_gguf_py(write_gguf(tiny_llama_dir, tmp_path / f"tiny-{dtype}.gguf", dtype=dtype))


def test_reads_llama_cpps_k_quants_and_gemmas_metadata(tiny_gemma3_gguf, tmp_path):
    quantized = quantize_gguf(tiny_gemma3_gguf, tmp_path / "tiny-q4_k_m.gguf", "q4_k_m")
    assert_same_as_gguf_py(tiny_gemma3_gguf)  # bool arrays (the sliding-window pattern), the chat template
    assert_same_as_gguf_py(quantized)
    assert {t.tensor_type.name for t in read_gguf(quantized).tensors} - {"F32", "F16"}  # something was quantized


def test_a_file_that_is_not_a_whole_gguf_is_one_clear_error(tiny_llama_gguf, tmp_path):
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    with pytest.raises(UsageError, match="not a GGUF file"):
        read_gguf(text)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_llama_gguf.read_bytes()[: tiny_llama_gguf.stat().st_size // 2])
    with pytest.raises(UsageError, match="truncated or corrupt GGUF"):
        read_gguf(cut)
