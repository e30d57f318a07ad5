"""mt_bench_branch: each skill leaf's seed questions, answered by base and tuned and graded 1-10 by a judge against
the seed answer (InstructLab's MT-Bench-Branch), with a verdict per leaf."""

from __future__ import annotations

import json

from finch.evaluate.benchmarks import BUILTIN, EvalRequest, EvalResult, benchmark


@benchmark(
    "mt_bench_branch",
    needs_data="the taxonomy (or the leaves) whose skills to test.",
    base_vs_tuned=True,
    max_tokens=256,
)
def mt_bench_branch(request: EvalRequest) -> EvalResult:
    from finch.errors import UsageError
    from finch.evaluate.branch import (
        BRANCH_PROMPT,
        run_mt_bench_branch,
        taxonomy_samples,
        verdict_markdown,
        verdict_rows,
    )
    from finch.evaluate.judge import judge_notes, judge_settings
    from finch.evaluate.mt_bench import packaged_judge_prompt
    from finch.fileio import atomic_write_text
    from finch.inference import load_backend

    judge, judge_max_tokens = judge_settings(request.judge, request.judge_max_tokens)
    samples = taxonomy_samples(request.data, ("skill",), per_leaf=request.limit)
    if not samples:
        where = f"--data {request.data}"
        raise UsageError(f"{where}: no valid skill leaf there; mt_bench_branch asks the skill leaves' questions.")
    prompt = packaged_judge_prompt(BRANCH_PROMPT)
    request.notes.append(
        f"{len(samples)} seed questions of {len({s.leaf for s in samples})} skill leaves"
        + (f" (at most {request.limit} a leaf)" if request.limit else "")
        + f"; greedy answers of at most {request.max_tokens} "
        f"tokens, graded 1-10 with FastChat's {BRANCH_PROMPT} prompt, the seed answer as the reference"
    )
    request.notes.append(
        "the seed questions are the leaves' own examples: a model trained on them has seen them (SDG's "
        "test.jsonl holds them out of the synthetic training data, not out of seed-only training)"
    )
    request.notes += judge_notes(judge, judge_max_tokens, BUILTIN)
    results, per_sample, verdicts, answers, judgements = run_mt_bench_branch(
        request.models,
        samples,
        lambda: load_backend(judge, request.models_dir, ctx=8192),
        prompt,
        request.models_dir,
        request.max_tokens,
        judge_max_tokens,
    )
    lines = []
    for i, s in enumerate(samples):
        graded = {
            label: {
                "answer": answers[label][i],
                "judgement": judgements[label][i].text,
                "rating": judgements[label][i].rating,
            }
            for label in request.models
        }
        row = {"leaf": s.leaf, "question": s.messages[-1]["content"], "reference": s.reference, **graded}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_text(request.output / "judgements.jsonl", "".join(lines))
    extra = {"judge": judge, "leaves": verdict_rows(verdicts), "metric": "mean judge rating"}
    return EvalResult(results, per_sample, extra, verdict_markdown(verdicts, "mean judge rating, 1-10"))
