"""finch evaluate: metric values checked against the libraries' documented examples, perplexity against a direct
computation, and the whole report (json, md, png) for base vs tuned on tiny real models."""

from __future__ import annotations

import json
import math

import pytest

from finch.errors import UsageError
from finch.evaluate.metrics import rouge_l, score, semantic_similarity
from finch.evaluate.run import evaluate
from tests.tiny_models import write_tiny_lora


def test_rouge_l_matches_the_rouge_score_readme():
    # rouge-score's README: score('The quick brown fox jumps over the lazy dog', 'The quick brown dog jumps on the
    # log.') gives rougeL precision 0.625, recall 0.5556, fmeasure 0.5882 (target first, prediction second).
    [value] = rouge_l(["The quick brown dog jumps on the log."], ["The quick brown fox jumps over the lazy dog"])
    assert value == pytest.approx(0.5882352941176471)


def test_corpus_scores():
    refs = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
    perfect, _ = score(refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["exact_match"] == 1.0 and perfect["rouge_l"] == pytest.approx(1.0)
    # sacrebleu's README example, first reference stream: BLEU 48.53 needs both streams; this one alone scores lower.
    system = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    partial, per_sample = score(system, refs)
    assert 0 < partial["bleu"] < 48.53 and partial["exact_match"] == pytest.approx(1 / 3)
    assert per_sample["contains_match"] == [1.0, 0.0, 0.0]


def test_semantic_similarity_ranks_meaning():
    same, related, unrelated = semantic_similarity(
        ["A cat sits on the mat.", "A kitten is resting on a rug.", "Stock prices fell sharply on Monday."],
        ["A cat sits on the mat."] * 3,
    )
    assert same == pytest.approx(1.0, abs=1e-4) and unrelated < related < same


def test_perplexity_equals_a_direct_computation(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finch.evaluate.perplexity import perplexity

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    text = "The weather station measures wind, rain and temperature. " * 6
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        direct = math.exp(float(model(ids, labels=ids).loss))
    one_window = perplexity(model, tokenizer, [text], max_length=1024, stride=1024)
    assert one_window["perplexity"] == pytest.approx(direct, rel=1e-5)
    assert one_window["tokens"] == ids.size(1) - 1
    sliding = perplexity(model, tokenizer, [text], max_length=32, stride=16)
    assert sliding["tokens"] == ids.size(1) - 1  # every token scored exactly once
    assert sliding["perplexity"] != pytest.approx(direct, rel=1e-6)  # less context per token: a different number


def test_base_vs_tuned_report(tiny_llama_dir, tmp_path):
    run = write_tiny_lora(tiny_llama_dir, tmp_path / "run")
    data = tmp_path / "test.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"Fact {i}?"}, {"role": "assistant", "content": f"Fact {i}: rain."}]}
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "report"
    models = {"base": str(tiny_llama_dir), "tuned": str(run)}
    results = evaluate(models, "metrics", data, out, tmp_path / "models", limit=3, max_tokens=8)
    assert set(results) == {"base", "tuned"}
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"] == "metrics" and report["results"] == results
    assert set(results["base"]) == {"bleu", "chrf", "rouge_l", "semantic_similarity", "exact_match", "contains_match"}
    assert "3 held-out prompts" in (out / "report.md").read_text()
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    ppl = evaluate(models, "perplexity", data, tmp_path / "ppl", tmp_path / "models")
    assert ppl["base"]["perplexity"] != pytest.approx(ppl["tuned"]["perplexity"])


def test_evaluate_errors(tmp_path):
    with pytest.raises(
        UsageError,
        match="--benchmark bleurt: choose one of human, key_facts, metrics, mmlu, mmlu_branch, mt_bench, mt_",
    ):
        evaluate({"m": "x"}, "bleurt", None, tmp_path, tmp_path)
    with pytest.raises(UsageError, match="needs --data"):
        evaluate({"m": "x"}, "metrics", None, tmp_path, tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(UsageError, match="bad.jsonl:1: not an evaluation row"):
        evaluate({"m": "x"}, "metrics", bad, tmp_path / "o", tmp_path)
