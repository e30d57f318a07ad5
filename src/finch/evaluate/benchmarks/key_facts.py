"""key_facts: does each answer to a held-out knowledge question hold the reference answer's key facts (dates,
numbers with units, names), cut out by fixed rules a reader can audit? Base vs tuned, per leaf."""

from __future__ import annotations

from finch.evaluate.benchmarks import EvalRequest, EvalResult, benchmark


@benchmark("key_facts", needs_data="a dataset folder (test.jsonl) or a taxonomy.", max_tokens=256)
def key_facts(request: EvalRequest) -> EvalResult:
    from finch.errors import UsageError
    from finch.evaluate.branch import answer_all, held_out_samples
    from finch.evaluate.key_facts import key_fact_markdown, key_fact_report, key_fact_scores, share_all_held

    samples, source = held_out_samples(request.data, ("knowledge",), request.limit)
    if not samples:
        raise UsageError(f"--data {request.data}: no knowledge question there (rows whose metadata.kind is knowledge).")
    models = request.models
    report = key_fact_report(samples, answer_all(models, samples, request.models_dir, request.max_tokens))
    request.notes[1] = f"data: {source}"
    request.notes.append(
        f"{len(samples)} questions of {len(report['leaves'])} knowledge leaves"
        + (f" (at most {request.limit} a leaf)" if request.limit else "")
        + f"; greedy answers of at most {request.max_tokens} tokens"
    )
    request.notes.append(
        "key facts: the dates, numbers (with units) and names of each reference answer, cut out by fixed rules "
        "(finch.evaluate.key_facts), less those the question states; all_key_facts is the share of questions with "
        "key facts whose answer holds every one. A question without key facts is not counted."
    )
    results, per_sample = {}, {}
    for label in models:
        results[label], per_sample[label] = key_fact_scores(report, label)
    leaves = [{**row, **{label: share_all_held(row, label) for label in models}} for row in report["leaves"]]
    extra = {"leaves": leaves, "questions": report["questions"], "metric": "all_key_facts"}
    return EvalResult(results, per_sample, extra, key_fact_markdown(report, list(models)))
