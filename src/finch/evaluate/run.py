"""Run a benchmark on one or more models (e.g. base and tuned) and write the report."""

from __future__ import annotations

from pathlib import Path

from finch.errors import NotImplementedYet, UsageError

BENCHMARKS = ("metrics", "perplexity")
LATER = ("mt_bench", "mt_bench_branch", "mmlu", "mmlu_branch", "human")


def evaluate(models: dict[str, str], benchmark: str, data: Path | None, output: Path, models_dir: Path,
             limit: int | None = None, max_tokens: int = 128) -> dict[str, dict[str, float]]:  # fmt: skip
    """`models` maps a label (base, tuned, ...) to a model reference. Returns {label: {metric: value}}."""
    from finch.evaluate.report import write_report

    if benchmark in LATER:
        raise NotImplementedYet(f"evaluate --benchmark {benchmark}", "evaluation")
    if benchmark not in BENCHMARKS:
        raise UsageError(f"--benchmark {benchmark}: choose one of {', '.join(BENCHMARKS + LATER)}.")
    if data is None:
        raise UsageError(f"--benchmark {benchmark} needs --data (a dataset folder with test.jsonl, or a file).")
    notes = [f"models: {', '.join(f'{label} = {ref}' for label, ref in models.items())}", f"data: {data}"]
    if any(ref in ("gemma-3-270m", "default") for ref in models.values()):
        notes.append("gemma-3-270m is a 270M base model: expect low absolute scores; compare base against tuned.")
    if benchmark == "metrics":
        results, per_sample = _metrics(models, data, models_dir, limit, max_tokens, notes)
    else:
        results, per_sample = _perplexity(models, data, models_dir, limit, notes), None
    write_report(output, benchmark, results, notes, per_sample)
    return results


def _metrics(models, data, models_dir, limit, max_tokens, notes):
    from finch.evaluate.data import load_eval_samples
    from finch.evaluate.metrics import score
    from finch.inference import GenerationParams, load_backend

    samples = load_eval_samples(data, limit)
    notes.append(f"{len(samples)} held-out prompts, greedy answers of at most {max_tokens} tokens")
    results, per_sample = {}, {}
    for label, ref in models.items():
        backend = load_backend(ref, models_dir, ctx=2048)
        try:
            answers = backend.chat(
                [s.messages for s in samples], GenerationParams(temperature=0, max_tokens=max_tokens)
            )
        finally:
            backend.close()
        results[label], per_sample[label] = score([a[0].text.strip() for a in answers], [s.reference for s in samples])
    return results, per_sample


def _perplexity(models, data, models_dir, limit, notes):
    from finch.evaluate.perplexity import load_texts, perplexity
    from finch.inference import load_backend

    texts = load_texts(data, limit)
    notes.append("perplexity: token-weighted, sliding windows of 512 tokens with stride 256 (HF convention)")
    results = {}
    for label, ref in models.items():
        backend = load_backend(ref, models_dir, backend="transformers", dtype="float32")
        results[label] = perplexity(backend.model, backend.tokenizer, texts)
    return results
