"""Multiple-choice log-likelihood scoring (mmlu, mmlu_branch): the numbers against a direct computation, the prompt
against lm-eval's MMLU template, and base-vs-tuned per-leaf reports on tiny real models."""

from __future__ import annotations

import json

import pytest

from finch.errors import UsageError
from finch.evaluate.mcq import (
    MCQ,
    choice_loglikelihoods,
    load_knowledge_mcq,
    load_mmlu_csv,
    score_mcqs,
    score_mcqs_by_text,
)
from finch.evaluate.run import evaluate
from tests.tiny_models import write_tiny_lora

ROWS = [
    {
        "leaf": "knowledge/products/kestrel",
        "question": "What is the K230's battery life?",
        "choices": ["2 days", "9 days", "30 days", "1 year"],
        "answer": 1,
        "context": "...",
    },
    {
        "leaf": "knowledge/products/kestrel",
        "question": "Which port charges it?",
        "choices": ["USB-C", "Lightning", "Micro-USB", "None"],
        "answer": 0,
        "context": "...",
    },
    {
        "leaf": "knowledge/science/rain",
        "question": "What measures rain?",
        "choices": ["A barometer", "A rain gauge", "An anemometer", "A hygrometer"],
        "answer": 1,
        "context": "...",
    },
]


def test_prompt_is_lm_evals_mmlu_template():
    # lm-eval tasks/mmlu/default/_default_template_yaml: "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nAnswer:"
    q = MCQ("  What measures rain? ", ["A barometer", "A rain gauge", "An anemometer", "A hygrometer"], 1, "x")
    expected = "What measures rain?\nA. A barometer\nB. A rain gauge\nC. An anemometer\nD. A hygrometer\nAnswer:"
    assert q.prompt() == expected


def test_loglikelihood_equals_a_direct_computation(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    prompt = "Question: what measures rain?\nAnswer:"
    scores = choice_loglikelihoods(model, tokenizer, prompt, [" A", " rain gauge"])
    for continuation, value in zip([" A", " rain gauge"], scores):
        ids = tokenizer(prompt + continuation).input_ids
        n = len(ids) - len(tokenizer(prompt).input_ids)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        direct = sum(float(logprobs[i - 1, ids[i]]) for i in range(len(ids) - n, len(ids)))
        assert value == pytest.approx(direct, abs=1e-4) and value < 0
    questions = [MCQ(r["question"], r["choices"], r["answer"], r["leaf"]) for r in ROWS]
    correct = score_mcqs(model, tokenizer, questions)
    for q, c in zip(questions, correct):
        letters = choice_loglikelihoods(model, tokenizer, q.prompt(), [" A", " B", " C", " D"])
        assert c == float(letters.index(max(letters)) == q.answer)


def test_text_form_is_lm_evals_mmlu_continuation(tiny_llama_dir):
    """The choice-text form: lm-eval's mmlu_continuation prompt, each choice's text as the continuation, and the
    answer with the highest log-likelihood per character (acc_norm), so it can differ from the unnormalised pick."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    q = MCQ("  What measures rain? ", ["A barometer", "A rain gauge", "An anemometer", "A hygrometer"], 1, "x")
    assert q.text_prompt() == "Question: What measures rain?\nAnswer:"
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    questions = [MCQ(r["question"], r["choices"], r["answer"], r["leaf"]) for r in ROWS] + [q]
    correct = score_mcqs_by_text(model, tokenizer, questions)
    for question, c in zip(questions, correct):
        scores = choice_loglikelihoods(model, tokenizer, question.text_prompt(), [f" {x}" for x in question.choices])
        per_char = [s / len(x) for s, x in zip(scores, question.choices)]
        assert c == float(per_char.index(max(per_char)) == question.answer)


def test_load_knowledge_mcq(tmp_path):
    (tmp_path / "knowledge_mcq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert [q.group for q in load_knowledge_mcq(tmp_path)] == [r["leaf"] for r in ROWS]
    assert len(load_knowledge_mcq(tmp_path, limit=1)) == 2  # --limit counts per leaf: every leaf stays measured
    (tmp_path / "bad.jsonl").write_text(json.dumps({**ROWS[0], "choices": ["a", "b"]}) + "\n")
    with pytest.raises(UsageError, match="bad.jsonl:1: not a knowledge MCQ row"):
        load_knowledge_mcq(tmp_path / "bad.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UsageError, match="holds no questions"):
        load_knowledge_mcq(tmp_path / "empty.jsonl")


def test_load_mmlu_in_its_release_layout(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "astronomy_test.csv").write_text(
        '"What is the Sun?",A planet,A star,A moon,A comet,B\nWhich is closest to the Sun?,Mercury,Venus,Earth,Mars,A\n'
    )
    [first, second] = load_mmlu_csv(tmp_path)
    assert (first.question, first.choices[1], first.answer) == ("What is the Sun?", "A star", 1)
    assert first.group == "astronomy"
    assert second.answer == 0 and len(load_mmlu_csv(tmp_path, limit=1)) == 1
    with pytest.raises(UsageError, match="downloads nothing"):
        load_mmlu_csv(tmp_path / "test" / "nothing")


def test_mmlu_branch_report(tiny_llama_dir, tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "knowledge_mcq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    run = write_tiny_lora(tiny_llama_dir, tmp_path / "run")
    out = tmp_path / "report"
    models = {"base": str(tiny_llama_dir), "tuned": str(run)}
    results = evaluate(models, "mmlu_branch", data, out, tmp_path / "models")
    report = json.loads((out / "report.json").read_text())
    assert report["results"] == results and results["base"]["questions"] == 3
    for label in ("base", "tuned"):  # both forms, each a share of the 3 questions, and the better one (OLMES)
        scores = results[label]
        assert {scores["accuracy"] * 3, scores["accuracy_text"] * 3} <= {0.0, 1.0, 2.0, 3.0}
        assert scores["accuracy_best"] == max(scores["accuracy"], scores["accuracy_text"])
        form = report["forms"][label]
        assert form == ("text" if scores["accuracy_text"] >= scores["accuracy"] else "letters")
        # the verdicts are in the model's better form: a leaf's score is that form's share of its questions
        chosen = report["per_sample"][label]["accuracy_text" if form == "text" else "accuracy"]
        assert report["per_sample"][label]["accuracy_best"] == chosen
        assert {row["leaf"]: row[label] for row in report["leaves"]} == {
            "knowledge/products/kestrel": (chosen[0] + chosen[1]) / 2,
            "knowledge/science/rain": chosen[2],
        }
    leaves = {row["leaf"]: row for row in report["leaves"]}
    assert set(leaves) == {"knowledge/products/kestrel", "knowledge/science/rain"}
    kestrel = leaves["knowledge/products/kestrel"]
    assert kestrel["questions"] == 2 and kestrel["base"] in (0.0, 0.5, 1.0)
    assert kestrel["delta"] == pytest.approx(kestrel["tuned"] - kestrel["base"])
    assert (
        kestrel["verdict"]
        == {1: "IMPROVED", -1: "REGRESSED", 0: "UNCHANGED"}[(kestrel["delta"] > 0) - (kestrel["delta"] < 0)]
    )
    assert "## Per leaf (accuracy_best)" in (out / "report.md").read_text()
    assert (out / "mmlu_branch-per-leaf.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UsageError, match="--base"):
        evaluate({"tuned": str(run)}, "mmlu_branch", data, out, tmp_path / "models")


@pytest.mark.slow
def test_builtin_loglikelihoods_match_lm_eval(builtin_home):
    """lm-eval's own numbers for these questions on the built-in model (recorded in lm_eval_reference.json with the
    command and task YAML that made them): finch's scoring must reproduce every choice's log-likelihood."""
    from pathlib import Path

    from finch.inference import load_backend

    reference = json.loads((Path(__file__).parent / "lm_eval_reference.json").read_text())["questions"]
    backend = load_backend("gemma-3-270m", builtin_home["models_dir"], backend="transformers", dtype="float32")
    try:
        questions = [MCQ(r["question"], r["choices"], r["answer"], r["leaf"]) for r in reference]
        for q, r in zip(questions, reference):
            ours = choice_loglikelihoods(backend.model, backend.tokenizer, q.prompt(), [" A", " B", " C", " D"])
            assert ours == pytest.approx(r["lm_eval_loglikelihoods"], abs=1e-4)
        assert score_mcqs(backend.model, backend.tokenizer, questions) == [r["lm_eval_acc"] for r in reference]
    finally:
        backend.close()
