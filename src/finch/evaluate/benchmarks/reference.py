"""Reference-based benchmarks on held-out prompts: metrics (BLEU, chrF, ROUGE-L, semantic similarity, exact and
contains match of greedy answers) and perplexity of the held-out texts."""

from __future__ import annotations

from finch.evaluate.benchmarks import EvalRequest, EvalResult, benchmark

DATA = "a dataset folder with test.jsonl, or a file"


@benchmark("metrics", needs_data=DATA)
def metrics(request: EvalRequest) -> EvalResult:
    from finch.evaluate.data import load_eval_samples
    from finch.evaluate.metrics import score
    from finch.inference import GenerationParams, load_backend

    samples = load_eval_samples(request.data, request.limit)
    request.notes.append(f"{len(samples)} held-out prompts, greedy answers of at most {request.max_tokens} tokens")
    params = GenerationParams(temperature=0, max_tokens=request.max_tokens)
    results, per_sample = {}, {}
    for label, ref in request.models.items():
        with load_backend(ref, request.models_dir, ctx=2048) as backend:
            answers = backend.chat([s.messages for s in samples], params)
        texts = [a[0].text.strip() for a in answers]
        results[label], per_sample[label] = score(texts, [s.reference for s in samples])
    return EvalResult(results, per_sample)


@benchmark("perplexity", needs_data=DATA)
def perplexity(request: EvalRequest) -> EvalResult:
    from finch.evaluate.perplexity import load_texts, perplexity
    from finch.inference import load_backend

    texts = load_texts(request.data, request.limit)
    request.notes.append("perplexity: token-weighted, sliding windows of 512 tokens with stride 256 (HF convention)")
    results = {}
    for label, ref in request.models.items():
        with load_backend(ref, request.models_dir, backend="transformers", dtype="float32") as backend:
            results[label] = perplexity(backend.model, backend.tokenizer, texts)
    return EvalResult(results)
