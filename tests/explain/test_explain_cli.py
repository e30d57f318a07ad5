"""`finch explain` end to end on tiny models: the files it writes hold maps that fit the tokens, the page is
self-contained, --compare traces the same answer through the base, and bad calls are one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from finch.taxonomy import sample_taxonomy_dir
from tests.conftest import assert_one_line_error, run_finch
from tests.tiny_models import write_tiny_lora

KNOWLEDGE_LEAF = sample_taxonomy_dir() / "knowledge" / "products" / "kestrel_vane_k230"


def explain(*args, home, timeout=300):
    return run_finch("explain", *args, env={"FINCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}, timeout=timeout)


def page_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="maps">(.*?)</script>', page, re.S).group(1))


def test_explain_writes_maps_that_fit_the_tokens_and_a_self_contained_page(tiny_gemma3_dir, tmp_path):
    out = tmp_path / "out"
    result = explain(
        "--model",
        str(tiny_gemma3_dir),
        "What is a wind vane?",
        "--max-tokens",
        "5",
        "--output",
        str(out),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "explanation.json").read_text())
    prompt, answer = summary["prompt_tokens"], summary["answer_tokens"]
    assert "".join(prompt).count("What is a wind vane?") == 1
    assert summary["answer"] == "".join(answer) and 1 <= len(answer) <= 5
    maps = np.load(out / "maps.npz")
    layers, heads = summary["layers"], summary["heads"]
    assert maps["model_attention"].shape == (layers, heads, len(answer), len(prompt))
    assert maps["model_attribution"].shape == maps["model_rollout"].shape == (len(answer), len(prompt))
    # Attention rows are distributions over the context; the prompt part of each is at most all of it.
    assert (maps["model_attention"] >= 0).all() and (maps["model_attention"].sum(-1) <= 1 + 1e-5).all()
    assert np.abs(maps["model_attribution"]).sum() > 0
    for name in (
        "attribution.png",
        "rollout.png",
        "attention-layers.png",
        *(f"attention/layer-{i:02d}.png" for i in range(layers)),
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "explain.html").read_text()
    data = page_data(page)
    assert data["prompt_tokens"] == prompt and data["answer_tokens"] == answer
    assert all(len(m["rows"]) == len(answer) and len(m["rows"][0]) == len(prompt) for m in data["maps"].values())
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from anywhere: it opens offline
    assert "peak memory" in result.stdout and summary["peak_rss_mb"] > 100


def test_compare_traces_the_same_answer_through_the_base(tiny_gemma3_dir, tmp_path):
    run = write_tiny_lora(tiny_gemma3_dir, tmp_path / "run", seed=1, scale=2.0)
    out = tmp_path / "out"
    result = explain(
        "--model",
        str(run),
        "--compare",
        str(tiny_gemma3_dir),
        "Name a colour.",
        "--max-tokens",
        "4",
        "--no-layer-plots",
        "--output",
        str(out),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "explanation.json").read_text())
    assert set(summary["own_answers"]) == {"model", "base"}
    maps = np.load(out / "maps.npz")
    # The same rows and columns under both models, with different numbers: the adapter changed the maps.
    assert maps["model_attribution"].shape == maps["base_attribution"].shape
    assert not np.allclose(maps["model_attribution"], maps["base_attribution"])
    assert summary["answer_logprob"]["model"] != pytest.approx(summary["answer_logprob"]["base"])
    assert (out / "compare.png").is_file() and not (out / "attention").exists()
    names = page_data((out / "explain.html").read_text())["maps"]
    assert "attribution share: model − base" in names and f"rollout ({tiny_gemma3_dir})" in names


def test_a_gguf_is_explained_on_its_dequantised_weights(tiny_gemma3_gguf, tmp_path):
    out = tmp_path / "out"
    result = explain(
        "--model",
        str(tiny_gemma3_gguf),
        "Hello there",
        "--max-tokens",
        "6",
        "--no-layer-plots",
        "--output",
        str(out),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    agreement = json.loads((out / "explanation.json").read_text())["gguf_agreement"]
    assert agreement is not None
    assert agreement["identical"] or agreement["gap_nats"] < 0.5, agreement


def test_a_knowledge_leaf_explains_each_held_out_question_with_its_passage(tiny_gemma3_dir, tmp_path):
    out = tmp_path / "out"
    result = explain(
        "--model",
        str(tiny_gemma3_dir),
        "--leaf",
        str(KNOWLEDGE_LEAF),
        "--max-tokens",
        "3",
        "--no-layer-plots",
        "--output",
        str(out),
        home=tmp_path / "home",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "grounding.json").read_text())
    assert len(table) == 4  # the sample leaf's held-out questions
    for i, row in enumerate(table, 1):
        summary = json.loads((out / row["folder"] / "explanation.json").read_text())
        prompt = "".join(summary["prompt_tokens"])
        assert row["question"] in prompt and "Passage 2:" in prompt
        assert 0 < row["model"]["chance"] < 1 and row["model"]["facts"]
        assert row["folder"] == f"question-{i}"
    assert "grounding" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "give a prompt to explain, or --leaf"),
        (("a prompt", "--leaf", str(KNOWLEDGE_LEAF)), "give a prompt to explain, or --leaf"),
        (("a prompt", "--max-tokens", "0"), "--max-tokens"),
        (("a prompt", "--model", "/no/such/model"), "/no/such/model"),
    ],
)
def test_bad_calls_are_one_line(args, fragment, tiny_gemma3_dir, tmp_path):
    full = ("--model", str(tiny_gemma3_dir), *args) if "--model" not in args else args
    assert_one_line_error(explain(*full, home=tmp_path / "home"), 2, fragment)
