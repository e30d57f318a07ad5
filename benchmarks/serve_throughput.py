"""Tokens/s and latency of `finch serve` (GGUF over HTTP, llama.cpp backend) with 1, 4, 8 and 16 concurrent
clients: requests decoded together (--parallel 8, the default, and 4 and 16 to choose it; with and without
--batch-invariant) beside the same server answering one at a time (--parallel 1) and llama-cpp-python in-process, on
the built-in model.

    python benchmarks/serve_throughput.py [--json OUT] [--max-tokens 64] [--skip-transformers]

Every mode answers the same 16 different chats greedily; the table says how many answers are identical to the
server's own answers one request at a time (--parallel 1, one client). tokens/s counts completion tokens over wall
time (all clients together), per client is each request's tokens over its own latency.
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
TOPICS = [
    "a lighthouse keeper and a storm",
    "a cat who learns to fly",
    "the last train of the night",
    "a robot gardener",
    "two friends lost in a forest",
    "a baker who cannot smell",
    "a map with a missing town",
    "the coldest winter",
    "a letter that arrives forty years late",
    "a dragon afraid of fire",
    "a clock that runs backwards",
    "a village under the sea",
    "the first day at a new school",
    "a detective who is a dog",
    "a painter who only paints doors",
    "a mountain that moves at night",
]
CHATS = [[{"role": "user", "content": f"Write a short story about {topic}."}] for topic in TOPICS]


def summarise(mode: str, clients: int, tokens: list[int], latencies: list[float], wall: float) -> dict:
    ordered = sorted(latencies)
    return {
        "mode": mode,
        "clients": clients,
        "requests": len(latencies),
        "completion_tokens": sum(tokens),
        "tokens_per_s": round(sum(tokens) / wall, 2),
        "tokens_per_s_per_client": round(statistics.mean(t / s for t, s in zip(tokens, latencies)), 2),
        "p50_latency_s": round(statistics.median(ordered), 3),
        "p99_latency_s": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "wall_s": round(wall, 2),
    }


def in_process_llama(gguf: Path, chats_ids: list[list[int]], max_tokens: int) -> dict:
    """Each chat once, one after another, through llama-cpp-python's own completion."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=os.cpu_count(), verbose=False)
    llm.create_completion(chats_ids[0], max_tokens=4, temperature=0)  # warm-up
    tokens, latencies = [], []
    start = time.perf_counter()
    for ids in chats_ids:
        t = time.perf_counter()
        llm.reset()
        result = llm.create_completion(ids, max_tokens=max_tokens, temperature=0)
        latencies.append(time.perf_counter() - t)
        tokens.append(result["usage"]["completion_tokens"])
    wall = time.perf_counter() - start
    llm.close()
    return summarise("llama-cpp-python in-process", 1, tokens, latencies, wall)


def over_http(base: str, clients: int, max_tokens: int, mode: str) -> tuple[dict, list[str]]:
    """The row, and the answers in CHATS order."""
    with httpx.Client(timeout=600) as client:
        warm = {"messages": MESSAGES, "max_tokens": 4, "temperature": 0}
        client.post(f"{base}/v1/chat/completions", json=warm).raise_for_status()

    def one(messages):
        with httpx.Client(timeout=600) as client:
            t = time.perf_counter()
            body = {"model": "m", "messages": messages, "max_tokens": max_tokens, "temperature": 0}
            response = client.post(f"{base}/v1/chat/completions", json=body)
            response.raise_for_status()
            answer = response.json()
            return (
                answer["usage"]["completion_tokens"],
                time.perf_counter() - t,
                answer["choices"][0]["message"]["content"],
            )

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, CHATS))
    wall = time.perf_counter() - start
    return summarise(mode, clients, [r[0] for r in results], [r[1] for r in results], wall), [r[2] for r in results]


def transformers_backend(models_dir: Path, clients: int, max_tokens: int, requests: int) -> dict:
    """The transformers backend's batched generate() called directly (the server runs it one request at a time)."""
    from finch.inference import GenerationParams, load_backend

    backend = load_backend("gemma-3-270m", models_dir, backend="transformers")
    params = GenerationParams(temperature=0, max_tokens=max_tokens)
    backend.chat([MESSAGES], params.model_copy(update={"max_tokens": 4}))  # warm-up
    tokens, latencies = [], []
    start = time.perf_counter()
    for first in range(0, requests, clients):  # `clients` conversations per batched generate call
        batch = CHATS[first : first + clients]
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
    chats_ids = [chat_prompt_ids(probe.prompt_format, probe.tokenize, chat) for chat in CHATS]
    probe.close()

    baseline = in_process_llama(gguf, chats_ids, args.max_tokens)
    rows = [baseline]
    env = {"FINCH_HOME": os.environ.get("FINCH_HOME", "")} if os.environ.get("FINCH_HOME") else {}
    reference: list[str] = []  # the one-at-a-time server's answers to one client
    modes = (
        ("finch serve, one at a time (--parallel 1)", ["--parallel", "1"], (1, 4, 8, 16)),
        ("finch serve --parallel 8", ["--parallel", "8"], (1, 4, 8, 16)),
        ("finch serve --parallel 8 --no-batch-invariant", ["--parallel", "8", "--no-batch-invariant"], (1, 8)),
        ("finch serve --parallel 4", ["--parallel", "4"], (16,)),
        ("finch serve --parallel 16", ["--parallel", "16"], (16,)),
    )
    for mode, flags, client_counts in modes:
        with finch_server("--model", "gemma-3-270m", "--ctx", "1024", *flags, env=env) as base:
            for clients in client_counts:
                row, answers = over_http(base, clients, args.max_tokens, mode)
                reference = reference or answers
                row["identical_to_one_at_a_time"] = sum(a == r for a, r in zip(answers, reference))
                rows.append(row)
    if not args.skip_transformers:
        for clients in (1, 8):
            rows.append(transformers_backend(models_dir, clients, args.max_tokens, len(CHATS)))

    table = Table(title=f"serve throughput, gemma-3-270m, {len(CHATS)} chats x {args.max_tokens} tokens, greedy")
    for column in ("mode", "clients", "tokens/s", "per client", "vs in-process", "p50 s", "p99 s", "same as alone"):
        table.add_column(column)
    for row in rows:
        same = row.get("identical_to_one_at_a_time")
        table.add_row(
            row["mode"],
            str(row["clients"]),
            f"{row['tokens_per_s']:.1f}",
            f"{row['tokens_per_s_per_client']:.1f}",
            f"{row['tokens_per_s'] / baseline['tokens_per_s']:.0%}",
            f"{row['p50_latency_s']:.2f}",
            f"{row['p99_latency_s']:.2f}",
            "-" if same is None else f"{same}/{row['requests']}",
        )
    Console().print(table)
    batched = {r["clients"]: r for r in rows if r["mode"] == "finch serve --parallel 8"}
    result = {
        "rows": rows,
        "eight_clients_vs_one": round(batched[8]["tokens_per_s"] / batched[1]["tokens_per_s"], 2),
        "eight_clients_identical": batched[8]["identical_to_one_at_a_time"],
    }
    print(
        f"finch serve --parallel 8: 8 clients / 1 client = {result['eight_clients_vs_one']}x (target >= 2x), "
        f"{result['eight_clients_identical']}/{len(CHATS)} answers as served one at a time"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
