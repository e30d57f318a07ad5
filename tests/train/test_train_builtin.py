"""The built-in Gemma 3 270M learns a made-up fact in 20 LoRA steps, and the adapter works in plain PEFT."""

from __future__ import annotations

import pytest

from finch.train import TrainConfig
from finch.train.runs import start_run
from tests.train.datasets import FACTS, write_jsonl

pytestmark = pytest.mark.slow


def test_twenty_steps_teach_a_fact(tmp_path, builtin_home):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finch.inference import GenerationParams, load_backend

    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    models = builtin_home["models_dir"]  # the session's prepared built-in model
    config = TrainConfig(data=tmp_path / "data", output=tmp_path / "run", max_steps=20, lr=1e-3, save_every=0)
    result = start_run(config, models, tmp_path / "runs", "gemma-3-270m")
    assert result.steps == 20 and result.train_loss < 0.3 * result.log[0]["loss"]

    backend = load_backend(str(result.run_dir), models)
    answers = [
        backend.chat([[{"role": "user", "content": q}]], GenerationParams(temperature=0, max_tokens=24))[0][0].text
        for q, _ in FACTS
    ]
    backend.close()
    learned = [a for (_, fact), a in zip(FACTS, answers) if fact.rstrip(".") in a]
    assert learned, answers

    base_dir = models / "gemma-3-270m"
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": FACTS[0][0]}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        before = base.generate(ids, max_new_tokens=12, do_sample=False)
        tuned = PeftModel.from_pretrained(base, result.run_dir).eval()
        after = tuned.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
    assert before.tolist() != after.tolist()

    # finch evaluate on the four facts: report.json/md and a plot, and the tuned model's ROUGE-L beats the base's.
    from finch.evaluate.run import evaluate

    scores = evaluate(
        {"base": "gemma-3-270m", "tuned": str(result.run_dir)},
        "metrics",
        tmp_path / "data" / "train.jsonl",
        tmp_path / "eval",
        models,
        max_tokens=24,
    )
    assert scores["tuned"]["rouge_l"] > scores["base"]["rouge_l"], scores
    assert {"report.json", "report.md"} <= {p.name for p in (tmp_path / "eval").iterdir()}
    assert list((tmp_path / "eval").glob("*.png"))

    # The q4_k_m export of the taught model answers through llama.cpp's chat completion and stops at end of turn.
    from finch.export import export_model
    from finch.models.resolve import resolve_model

    gguf = export_model(resolve_model(str(result.run_dir), models), "gguf", "q4_k_m", output=tmp_path / "gguf").path
    exported = load_backend(str(gguf), models, ctx=512)
    try:
        replies = [
            exported.chat([[{"role": "user", "content": q}]], GenerationParams(temperature=0, max_tokens=48))[0][0]
            for q, _ in FACTS
        ]
    finally:
        exported.close()
    known = [r for (_, fact), r in zip(FACTS, replies) if fact.rstrip(".") in r.text]
    assert known, [r.text for r in replies]
    assert all(r.finish_reason == "stop" for r in known), [(r.text, r.finish_reason) for r in known]
