"""Four-choice knowledge tests scored by log-likelihood: MMLU (its CSVs) and mmlu_branch (the questions finch's
teacher wrote about each knowledge leaf's documents, base vs tuned per leaf)."""

from __future__ import annotations

from finch.evaluate.benchmarks import EvalRequest, EvalResult, benchmark


def _accuracy(request: EvalRequest, questions, group: str) -> tuple[dict, dict, dict, dict]:
    """Both of lm-eval's forms (finch.evaluate.mcq), `accuracy` by letters and `accuracy_text` by choice text, and
    OLMES's rule over them: each model is scored in the form it does better in (`accuracy_best`; text on a tie), as
    a 270M base model picks letters by bias and a large chat model may do better with letters. The per-group
    accuracies, and so the verdicts, are in each model's better form; `forms` says which form that was."""
    from finch.evaluate.mcq import group_accuracy, score_mcqs, score_mcqs_by_text
    from finch.inference import load_backend

    limit = f" (at most {request.limit} a {group})" if request.limit else ""
    request.notes.append(
        f"{len(questions)} four-choice questions in {len({q.group for q in questions})} {group}s{limit}; zero-shot, "
        "float32 transformers. accuracy: the log-likelihood of ' A'..' D' after 'Answer:' (lm-eval's mmlu prompt "
        "and acc); accuracy_text: of each choice's text after 'Question: ...\\nAnswer:', per character (lm-eval's "
        "mmlu_continuation acc_norm), which measures a model under ~1B parameters where letters measure its bias "
        "toward a letter; accuracy_best: each model in the form it does better in (OLMES), which the verdicts use"
    )
    results, per_sample, groups, forms = {}, {}, {}, {}
    for label, ref in request.models.items():
        with load_backend(ref, request.models_dir, backend="transformers", dtype="float32") as backend:
            correct = score_mcqs(backend.model, backend.tokenizer, questions)
            by_text = score_mcqs_by_text(backend.model, backend.tokenizer, questions)
        letters, text = sum(correct) / len(correct), sum(by_text) / len(by_text)
        forms[label] = "text" if text >= letters else "letters"
        best = by_text if forms[label] == "text" else correct
        results[label] = {
            "accuracy": letters,
            "accuracy_text": text,
            "accuracy_best": max(letters, text),
            "questions": len(correct),
        }
        per_sample[label] = {"accuracy": correct, "accuracy_text": by_text, "accuracy_best": best}
        groups[label] = group_accuracy(questions, best)
    request.notes.append("forms scored by accuracy_best: " + ", ".join(f"{k} {v}" for k, v in forms.items()))
    return results, per_sample, groups, forms


@benchmark("mmlu", needs_data="the MMLU data folder (test/SUBJECT_test.csv); finch downloads nothing.")
def mmlu(request: EvalRequest) -> EvalResult:
    from finch.evaluate.mcq import load_mmlu_csv

    questions = load_mmlu_csv(request.data, request.limit)
    results, per_sample, groups, forms = _accuracy(request, questions, "subject")
    return EvalResult(results, per_sample, {"subjects": groups, "forms": forms})


@benchmark(
    "mmlu_branch",
    needs_data="a dataset folder holding knowledge_mcq.jsonl (from `finch data generate`).",
    base_vs_tuned=True,
)
def mmlu_branch(request: EvalRequest) -> EvalResult:
    from finch.evaluate.branch import LeafVerdict, verdict_markdown, verdict_rows
    from finch.evaluate.mcq import load_knowledge_mcq

    questions = load_knowledge_mcq(request.data, request.limit)
    results, per_sample, groups, forms = _accuracy(request, questions, "leaf")
    verdicts = []
    for leaf in groups["base"]:
        count = sum(q.group == leaf for q in questions)
        verdict = LeafVerdict(leaf, count, groups["base"][leaf], groups["tuned"][leaf], "")
        verdict.verdict = "IMPROVED" if verdict.delta > 0 else "REGRESSED" if verdict.delta < 0 else "UNCHANGED"
        verdicts.append(verdict)
    extra = {"leaves": verdict_rows(verdicts), "metric": "accuracy_best", "forms": forms}
    return EvalResult(results, per_sample, extra, verdict_markdown(verdicts, "accuracy_best"))
