"""Accepted samples per minute of `finch data generate` with the built-in teacher (Qwen2.5-Coder-1.5B-Instruct) on
the sample knowledge leaf: finch's local generation (several sequences decoded together, continuous batching, each
prompt reusing the longest prefix already in the cache: the document chunk several calls ask about) against one
request at a time through plain llama-cpp-python.

    python benchmarks/sdg_throughput.py [--json OUT] [--leaf kestrel] [--samples 40] [--pipeline full]

Both modes run the same pipeline on the same leaf with the same seed, so the teacher gets the same prompts; "one
request at a time" is the same backend with its batch and rating methods hidden, so sdg sends each call through
chat() (llama-cpp-python, reset per request: no prefix reuse) and judges read the teacher's "Rating: N" text.
Accepted = rows in train.jsonl after every filter (the faithfulness judge, dedup). The two modes sample through
different samplers (same settings), so their texts, lengths and accepted counts differ by chance: completion tokens
per second is the throughput, accepted per minute what a user gets. The multiple-choice block (a side output, one
call per chunk) is left out of both: `--pipeline` names a pipeline whose knowledge blocks are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


class Counting:
    """The teacher, counting completion tokens; batched=False declares no batch decoding and no choice
    probabilities, so sdg sends one chat() per call, as it did before batching, and judges read "Rating: N"."""

    def __init__(self, backend, batched: bool):
        self.backend, self.tokens = backend, 0
        self.name, self.model_name = backend.name, backend.model_name
        self.abilities = replace(backend.abilities, batch_decoding=batched, choice_probs=batched)
        self.prompt_format, self.tokenize = backend.prompt_format, backend.tokenize

    def next_token_probs(self, messages, answer_prefix, choices):
        return self.backend.next_token_probs(messages, answer_prefix, choices)

    def chat(self, conversations, params):
        results = self.backend.chat(conversations, params)
        self.tokens += sum(c.completion_tokens for r in results for c in r)
        return results

    def chat_stream(self, requests):
        for key, completion in self.backend.chat_stream(requests):
            self.tokens += completion.completion_tokens
            yield key, completion

    def close(self):
        pass


def run(mode: str, backend, leaf, pipeline: str, samples: int, seed: int) -> dict:
    from finch.sdg import GenerateOptions, generate_dataset, load_pipeline

    with tempfile.TemporaryDirectory(prefix="finch-sdg-bench-") as out:
        options = GenerateOptions(output=Path(out), scale=100, seed=seed, limit_per_leaf=samples)
        chosen = load_pipeline(pipeline)
        chosen.knowledge = [block for block in chosen.knowledge if block.type != "mcq"]  # a side output: not timed
        start = time.perf_counter()
        report = generate_dataset([leaf], backend, chosen, options)
        wall = time.perf_counter() - start
    stages = report["leaves"][0]["stages"]
    accepted = report["train"] - report["leaves"][0]["seed_rows"]  # train.jsonl also holds the shown seed examples
    return {
        "mode": mode,
        "generated": stages[0]["generated"],
        "retries": stages[0].get("retries", 0),
        "rejected": stages[0]["rejected"],
        "accepted": accepted,
        "wall_s": round(wall, 1),
        "completion_tokens": backend.tokens,
        "tokens_per_s": round(backend.tokens / wall, 2),
        "accepted_per_min": round(accepted / wall * 60, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--leaf", default="kestrel", help="a sample-taxonomy leaf (a part of its name)")
    parser.add_argument("--samples", type=int, default=40, help="samples to generate (--limit-per-leaf)")
    parser.add_argument("--pipeline", default="full")
    parser.add_argument("--teacher", default="teacher", help="a built-in model name or a .gguf")
    parser.add_argument("--slots", type=int, default=16, help="sequences decoded together")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="llama.cpp threads, both modes")
    args = parser.parse_args()

    from finch.config import load_settings
    from finch.inference.llama_cpp_backend import LlamaCppBackend
    from finch.models.prepare import ensure_builtin_gguf
    from finch.models.resolve import resolve_model
    from finch.taxonomy import check_taxonomy, sample_taxonomy_dir

    leaf = next(r for r in check_taxonomy([sample_taxonomy_dir()]).leaves if args.leaf in r.name)
    model = resolve_model(args.teacher, load_settings().path("models_dir"))
    gguf = ensure_builtin_gguf(model.name, model.gguf) if model.kind == "builtin" else model.gguf
    backend = LlamaCppBackend(gguf, n_ctx=4096, n_threads=args.threads, batch_slots=args.slots)
    try:
        rows = [
            run("one request at a time", Counting(backend, False), leaf, args.pipeline, args.samples, args.seed),
            run(f"batched, {args.slots} slots", Counting(backend, True), leaf, args.pipeline, args.samples, args.seed),
        ]
    finally:
        backend.close()

    table = Table(
        title=f"sdg throughput: {args.pipeline} pipeline, {leaf.name}, {args.samples} samples, "
        f"{model.name} teacher, {args.threads} threads"
    )
    for column in ("mode", "asked", "tokens", "tokens/s", "accepted", "wall s", "accepted/min"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["mode"],
            str(row["generated"]),
            str(row["completion_tokens"]),
            f"{row['tokens_per_s']:.1f}",
            str(row["accepted"]),
            f"{row['wall_s']:.1f}",
            f"{row['accepted_per_min']:.2f}",
        )
    Console().print(table)
    baseline, batched = rows
    speedup = batched["accepted_per_min"] / baseline["accepted_per_min"] if baseline["accepted_per_min"] else None
    token_speedup = batched["tokens_per_s"] / baseline["tokens_per_s"]
    result = {
        "rows": rows,
        "accepted_speedup": speedup and round(speedup, 2),
        "tokens_speedup": round(token_speedup, 2),
        "target": 2.0,
        "leaf": leaf.name,
        "pipeline": args.pipeline,
        "samples": args.samples,
        "threads": args.threads,
        "slots": args.slots,
    }
    print(f"accepted/min: {result['accepted_speedup']}× (target ≥ 2×); completion tokens/s: {token_speedup:.2f}×")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
