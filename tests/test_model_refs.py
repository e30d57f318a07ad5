"""Model references: every kind resolves to the right thing, and every mistake gets a clear message."""

from __future__ import annotations

import json
import socket

import pytest

from finch.errors import FinchError, UsageError
from finch.models.cache import cached_models, remove_cached_model
from finch.models.chat_format import native_chat_format
from finch.models.prepare import download_from_hub
from finch.models.resolve import MARKER, resolve_model
from tests.conftest import assert_one_line_error, run_finch


@pytest.fixture
def models_dir(tmp_path):
    return tmp_path / "models"


def make_hf_dir(path, model_type="llama"):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


@pytest.mark.parametrize("name", ["gemma-3-270m", "default", " default "])
def test_builtin_names(name, models_dir):
    model = resolve_model(name, models_dir)
    assert (model.kind, model.name) == ("builtin", "gemma-3-270m")
    assert model.path == models_dir / "gemma-3-270m"
    assert model.gguf.name == "gemma-3-270m-q4_k_m.gguf"
    assert model.needs_preparing


def test_local_hf_dir(tmp_path, models_dir):
    hf = make_hf_dir(tmp_path / "my-model")
    model = resolve_model(str(hf), models_dir)
    assert (model.kind, model.path, model.needs_preparing) == ("hf", hf, False)


def test_gguf_file_and_folder_with_one_gguf(tmp_path, models_dir):
    folder = tmp_path / "ggufs"
    folder.mkdir()
    gguf = folder / "tiny.Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    by_file = resolve_model(str(gguf), models_dir)
    assert (by_file.kind, by_file.gguf) == ("gguf", gguf)
    assert by_file.path.parent == models_dir and by_file.path.name.startswith("tiny.Q8_0-")
    assert resolve_model(str(folder), models_dir).path == by_file.path
    (folder / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(UsageError, match="2 .gguf files"):
        resolve_model(str(folder), models_dir)


def test_adapter_run_dir_records_its_base(tmp_path, models_dir):
    base = make_hf_dir(tmp_path / "base")
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "somewhere/else", "r": 8}))
    (run / "run.yaml").write_text(f"base_model: {base}\n")
    model = resolve_model(str(run), models_dir)
    assert (model.kind, model.adapter, model.base.kind, model.path) == ("adapter", run, "hf", base)
    (run / "run.yaml").unlink()
    assert resolve_model(str(run), models_dir).base.kind == "hub"  # falls back to adapter_config.json
    (run / "adapter_config.json").write_text("{}")
    with pytest.raises(UsageError, match="does not record its base model"):
        resolve_model(str(run), models_dir)


def test_hub_ids(models_dir):
    model = resolve_model("google/gemma-3-270m", models_dir)
    assert (model.kind, model.path) == ("hub", models_dir / "google--gemma-3-270m")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "empty model reference"),
        ("llama3", "unknown model reference 'llama3'"),
        ("./nope", "no such file or directory"),
        ("/definitely/not/here.gguf", "no such file or directory"),
        ("a/b/c", "unknown model reference"),
    ],
)
def test_bad_references(ref, message, models_dir):
    with pytest.raises(UsageError, match=message):
        resolve_model(ref, models_dir)


def test_non_gguf_file_and_empty_dir(tmp_path, models_dir):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    with pytest.raises(UsageError, match="must be a .gguf"):
        resolve_model(str(weights), models_dir)
    with pytest.raises(UsageError, match="not a model directory"):
        resolve_model(str(tmp_path), models_dir)


def test_hub_download_offline_is_one_line(finch_home):
    result = run_finch("model", "download", "someone/some-model", env={"HF_HUB_OFFLINE": "1"})
    assert_one_line_error(result, 1, "cannot download someone/some-model", "offline", "local path")


def test_hub_download_unreachable_is_a_clear_error(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_ETAG_TIMEOUT", 2)
    with pytest.raises(FinchError, match="cannot download someone/some-model"):
        download_from_hub("someone/some-model", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cache_list_and_remove(models_dir):
    hub = make_hf_dir(models_dir / "someone--model")
    (hub / MARKER).write_text(json.dumps({"kind": "hub", "source": "https://huggingface.co/someone/model"}))
    make_hf_dir(models_dir / "not-ours")  # no marker: not finch's, never listed or removed
    assert [m.name for m in cached_models(models_dir)] == ["someone--model"]
    with pytest.raises(UsageError, match="no cached model named 'not-ours'"):
        remove_cached_model("not-ours", models_dir)
    with pytest.raises(UsageError):
        remove_cached_model("..", models_dir)
    assert remove_cached_model("someone/model", models_dir) == [hub]
    assert not hub.exists() and (models_dir / "not-ours").exists()


def test_native_chat_format_by_family():
    assert native_chat_format("gemma3_text", {"<start_of_turn>", "<end_of_turn>"}).name == "gemma"
    assert native_chat_format("llama", {"<|eot_id|>", "<|start_header_id|>"}).name == "llama3"
    assert native_chat_format("qwen2", {"<|im_start|>", "<|im_end|>"}).name == "chatml"
    fallback = native_chat_format("gemma3_text", set())
    assert fallback.end_of_turn is None and "eos_token" in fallback.template
