"""Tokens/s and latency of `finch serve` (GGUF over HTTP, llama.cpp backend) against llama-cpp-python in-process
and finch's transformers backend, with 1 and 8 concurrent clients, on the built-in model.

    python benchmarks/serve_throughput.py [--json OUT] [--max-tokens 64] [--requests 8]

Every mode answers the same chat greedily, so each produces the same tokens; tokens/s counts completion tokens
over wall time (all clients together), latency is per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import finch_server  # noqa: E402

MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def summarise(mode: str, clients: int, tokens: list[int], latencies: list[float], wall: float) -> dict:
    ordered = sorted(latencies)
    return {
        "mode": mode,
        "clients": clients,
        "requests": len(latencies),
        "completion_tokens": sum(tokens),
        "tokens_per_s": round(sum(tokens) / wall, 2),
        "p50_latency_s": round(statistics.median(ordered), 3),
        "p95_latency_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "wall_s": round(wall, 2),
    }


def in_process_llama(gguf: Path, prompt_ids: list[int], max_tokens: int, requests: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=os.cpu_count(), verbose=False)
    llm.create_completion(prompt_ids, max_tokens=4, temperature=0)  # warm-up
    tokens, latencies = [], []
    start = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        llm.reset()
        result = llm.create_completion(prompt_ids, max_tokens=max_tokens, temperature=0)
        latencies.append(time.perf_counter() - t)
        tokens.append(result["usage"]["completion_tokens"])
    wall = time.perf_counter() - start
    llm.close()
    return summarise("llama-cpp-python in-process", 1, tokens, latencies, wall)


def over_http(base: str, clients: int, max_tokens: int, requests: int, mode: str) -> dict:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0}
    with httpx.Client(timeout=600) as client:
        client.post(f"{base}/v1/chat/completions", json={**body, "max_tokens": 4})  # warm-up

    def one(_):
        with httpx.Client(timeout=600) as client:
            t = time.perf_counter()
            response = client.post(f"{base}/v1/chat/completions", json=body)
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"], time.perf_counter() - t

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    return summarise(mode, clients, [r[0] for r in results], [r[1] for r in results], wall)


def transformers_backend(models_dir: Path, clients: int, max_tokens: int, requests: int) -> dict:
    from finch.inference import GenerationParams, load_backend

    backend = load_backend("gemma-3-270m", models_dir, backend="transformers")
    params = GenerationParams(temperature=0, max_tokens=max_tokens)
    backend.chat([MESSAGES], params.model_copy(update={"max_tokens": 4}))  # warm-up
    tokens, latencies = [], []
    start = time.perf_counter()
    for first in range(0, requests, clients):  # `clients` conversations per batched generate call
        batch = [MESSAGES] * min(clients, requests - first)
        t = time.perf_counter()
        results = backend.chat(batch, params)
        elapsed = time.perf_counter() - t
        tokens += [r[0].completion_tokens for r in results]
        latencies += [elapsed] * len(batch)
    wall = time.perf_counter() - start
    return summarise("finch transformers backend (batched generate)", clients, tokens, latencies, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--skip-transformers", action="store_true", help="skip the (slow) transformers backend")
    args = parser.parse_args()

    from finch.config import load_settings
    from finch.inference import load_backend
    from finch.inference.base import chat_prompt_ids
    from finch.models.prepare import ensure_builtin_gguf
    from finch.models.resolve import resolve_model

    models_dir = load_settings().path("models_dir")
    model = resolve_model("gemma-3-270m", models_dir)
    gguf = ensure_builtin_gguf(model.name, model.gguf)
    probe = load_backend("gemma-3-270m", models_dir, ctx=1024)
    prompt_ids = chat_prompt_ids(probe.prompt_format, probe.tokenize, MESSAGES)
    probe.close()

    rows = [in_process_llama(gguf, prompt_ids, args.max_tokens, args.requests)]
    env = {"FINCH_HOME": os.environ.get("FINCH_HOME", "")} if os.environ.get("FINCH_HOME") else {}
    with finch_server("--model", "gemma-3-270m", "--ctx", "1024", env=env) as base:
        for clients in (1, 8):
            rows.append(over_http(base, clients, args.max_tokens, args.requests, "finch serve (llama-cpp, HTTP)"))
    if not args.skip_transformers:
        for clients in (1, 8):
            rows.append(transformers_backend(models_dir, clients, args.max_tokens, args.requests))

    baseline = rows[0]["tokens_per_s"]
    table = Table(title=f"serve throughput, gemma-3-270m, {args.requests} requests × {args.max_tokens} tokens")
    for column in ("mode", "clients", "tokens/s", "vs in-process", "p50 s", "p95 s"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["mode"],
            str(row["clients"]),
            f"{row['tokens_per_s']:.1f}",
            f"{row['tokens_per_s'] / baseline:.0%}",
            f"{row['p50_latency_s']:.2f}",
            f"{row['p95_latency_s']:.2f}",
        )
    Console().print(table)
    single = next(r for r in rows if r["mode"].startswith("finch serve") and r["clients"] == 1)
    result = {"rows": rows, "single_stream_ratio": round(single["tokens_per_s"] / baseline, 3), "target": 0.9}
    print(f"single-stream finch serve / in-process llama.cpp: {result['single_stream_ratio']:.0%} (target ≥ 90%)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
