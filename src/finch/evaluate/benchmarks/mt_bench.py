"""MT-Bench: FastChat's 80 two-turn questions, answered by each model and graded 1-10 by a judge."""

from __future__ import annotations

from finch.evaluate.benchmarks import BUILTIN, EvalRequest, EvalResult, benchmark

# FastChat's 1024 tokens a turn for a model behind a URL; 128 for a local one, which keeps `--limit 2` with the
# built-in model and judge to minutes on two cores (a 270M model's answers lose nothing by it).
MT_BENCH_TOKENS = {"url": 1024, "local": 128}


@benchmark("mt_bench", max_tokens=None)
def mt_bench(request: EvalRequest) -> EvalResult:
    from finch.evaluate.judge import judge_notes, judge_settings
    from finch.evaluate.mt_bench import load_mt_bench, run_mt_bench
    from finch.inference import load_backend
    from finch.inference.loader import is_url

    judge, judge_max_tokens = judge_settings(request.judge, request.judge_max_tokens)
    bench = load_mt_bench(request.data, request.limit)
    request.notes[1] = f"data: {bench.source} ({len(bench.questions)} questions, 2 turns each)"
    tokens = {
        label: request.max_tokens or MT_BENCH_TOKENS["url" if is_url(ref) else "local"]
        for label, ref in request.models.items()
    }
    per_model = ", ".join(f"{n} tokens a turn ({label})" for label, n in tokens.items())
    request.notes.append(f"answers: FastChat's per-category temperatures, seed 0, at most {per_model}")
    request.notes += judge_notes(judge, judge_max_tokens, BUILTIN)
    results, per_sample, categories, per_question = run_mt_bench(
        lambda label: load_backend(request.models[label], request.models_dir, ctx=4096),
        lambda: load_backend(judge, request.models_dir, ctx=8192),
        bench,
        tokens,
        judge_max_tokens,
        request.output,
    )
    extra = {
        "judge": judge,
        "categories": categories,
        "per_prompt": per_question,
        "metric": "mean rating of both turns",
    }
    return EvalResult(results, per_sample, extra)
