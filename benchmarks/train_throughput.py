"""Training throughput of finch's LoRA loop against TRL's SFTTrainer + PEFT on the built-in model.

    python benchmarks/train_throughput.py [--json OUT] [--steps 4] [--batch-size 4] [--grad-accum 2] [--repeats 3]

Both train the same LoRA (r16, alpha 32, dropout 0.05, all linear layers) for the same optimiser steps and effective
batch (samples per step) on the same deterministic variable-length chat samples, with completion-only loss and the
hardware profile's dtype (bf16 only where the CPU has it). The baseline is TRL's defaults otherwise: no packing, so
batches are padded. Each runs in its own process so peak RSS is its own. tokens/s counts non-padding tokens over the
training steps; eval loss is the mean over answer tokens of the same held-out samples.

finch turns on transparent huge pages for torch's CPU allocator (THP_MEM_ALLOC_ENABLE, set when finch is
imported); the baseline runs as TRL users get it, without, unless --baseline-thp. The machine's load average is
recorded before and after, because other processes on the same cores change both numbers. So does the host: on a
shared VM the same run's speed varies by 10-20% from minute to minute. The two trainers therefore run alternately
`--repeats` times; the table shows each one's median tokens/s and its highest peak RSS, and the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_WORD_LIST = """
the a model learns weather station wind rain sensor mast console battery pressure humidity garden river stone bridge
fruit moon planet city library morning evening teacher student answer question data set small large quick slow bright
dark warm cold north south east west under over between before after because while measure record calibrate replace
install pair reset display history alarm firmware warranty manual chapter
"""
WORDS = _WORD_LIST.split()
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def make_samples(n: int, seed: int) -> list[dict]:
    """Single-turn chats of varied length, so padding matters and both trainers see the same answer tokens."""
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."

    rows = []
    for _ in range(n):
        messages = [{"role": "user", "content": text(8, 60) + " " + text(3, 10)[:-1] + "?"}]
        if rng.random() < 0.3:
            messages.insert(0, {"role": "system", "content": text(4, 12)})
        messages.append({"role": "assistant", "content": text(6, 120)})
        rows.append({"messages": messages})
    return rows


def write_data(folder: Path, n_train: int, n_test: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", make_samples(n_train, 0)), ("test", make_samples(n_test, 1))):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def run_finch(args) -> dict:
    from finch.train import TrainConfig
    from finch.train.context import RunContext, training_device_and_dtype
    from finch.train.data import load_data
    from finch.train.loop import train

    config = TrainConfig(
        data=args.data,
        max_steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        max_seq_len=1024,
        lora_rank=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
        save_every=0,
        seed=0,
        gradient_checkpointing=args.gradient_checkpointing,
        forward_tokens=args.forward_tokens,
    )
    hf_dir = Path(args.hf_dir)
    run_dir = Path(tempfile.mkdtemp(prefix="finch-bench-"))
    run = RunContext(hf_dir, str(hf_dir), run_dir, False, *training_device_and_dtype(config))
    result = train(config, load_data(config, hf_dir), run)
    tokens = sum(r["tokens"] for r in result.log)
    return {
        "tokens_per_s": result.tokens_per_s,
        "tokens": tokens,
        "peak_rss_gb": peak_rss_gb(),
        "eval_loss": round(result.eval_loss, 4),
        "final_train_loss": result.train_loss,
    }


def run_baseline(args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from finch.system import system_info
    from finch.train import TrainConfig
    from finch.train.loop import warmup_steps

    dtype = system_info().profile.dtype

    def load(name: str) -> Dataset:
        rows = [json.loads(line) for line in (Path(args.data) / name).read_text().splitlines()]
        return Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])

    train_set, test_set = load("train.jsonl"), load("test.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(args.hf_dir)
    model = AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=getattr(torch, dtype))
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        per_device_eval_batch_size=len(test_set),
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        # finch's warmup in whole steps (a ratio, transformers rounds up: 4 steps would begin with one at lr 0)
        warmup_steps=warmup_steps(TrainConfig(data=args.data), args.steps),
        bf16=dtype == "bfloat16",
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train_set,
        eval_dataset=test_set,
        processing_class=tokenizer,
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
    )
    collate, counted = trainer.data_collator, {"tokens": 0}

    def counting_collator(features):
        batch = collate(features)
        if trainer.model.training:
            counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    trainer.data_collator = counting_collator
    started = time.monotonic()
    metrics = trainer.train().metrics
    seconds = metrics.get("train_runtime") or time.monotonic() - started
    eval_loss = trainer.evaluate()["eval_loss"]
    return {
        "tokens_per_s": round(counted["tokens"] / seconds, 2),
        "tokens": counted["tokens"],
        "peak_rss_gb": peak_rss_gb(),
        "eval_loss": round(eval_loss, 4),
        "final_train_loss": round([h["loss"] for h in trainer.state.log_history if "loss" in h][-1], 4),
    }


def summary(runs: list[dict]) -> dict:
    """One trainer's runs: median tokens/s, the highest peak RSS, and every run."""
    return {
        "tokens_per_s": round(statistics.median(run["tokens_per_s"] for run in runs), 2),
        "tokens": runs[0]["tokens"],
        "peak_rss_gb": max(run["peak_rss_gb"] for run in runs),
        "eval_loss": runs[0]["eval_loss"],
        "final_train_loss": runs[0]["final_train_loss"],
        "runs": runs,
    }


def worker(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(args.data), "--hf-dir", str(args.hf_dir)]
    cmd += ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--grad-accum", str(args.grad_accum)]
    cmd += ["--lr", str(args.lr)] + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])
    cmd += ["--forward-tokens", str(args.forward_tokens)] if args.forward_tokens else []
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if name == "baseline" and args.baseline_thp:
        env["THP_MEM_ALLOC_ENABLE"] = "1"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write {finch: ..., baseline: ...} here")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--only", choices=["finch", "baseline"])
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each trainer (median reported)")
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="finch recomputes activations: less RSS, more time"
    )
    parser.add_argument(
        "--forward-tokens", type=int, help="finch's tokens per forward pass (default: 512 on CPU): memory vs speed"
    )
    parser.add_argument("--baseline-thp", action="store_true", help="give the baseline finch's huge-page setting")
    parser.add_argument("--worker", choices=["finch", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hf-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_finch(args) if args.worker == "finch" else run_baseline(args)))
        return

    from rich.console import Console
    from rich.table import Table

    from finch.config import load_settings
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.system import system_info

    settings = load_settings()
    args.hf_dir = prepare_model(resolve_model(args.model, settings.path("models_dir")))
    args.data = write_data(Path(tempfile.mkdtemp(prefix="train-bench-data-")), args.samples, 16)
    load_before = os.getloadavg()
    names = ["finch", "baseline"] if not args.only else [args.only]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            runs[name].append(worker(name, args))
    results = {name: summary(done) for name, done in runs.items()}
    load_after = os.getloadavg()
    table = Table(title=f"{args.model}, LoRA r16, {args.steps} steps x {args.batch_size * args.grad_accum} samples")
    for column in ("trainer", "median tokens/s", "runs", "tokens", "peak RSS GB", "eval loss"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        each = ", ".join(f"{run['tokens_per_s']:.1f}" for run in r["runs"])
        table.add_row(
            name, f"{r['tokens_per_s']:.1f}", each, str(r["tokens"]), f"{r['peak_rss_gb']:.2f}", f"{r['eval_loss']:.4f}"
        )
    console = Console()
    console.print(table)
    if len(results) == 2:
        f, b = results["finch"], results["baseline"]
        console.print(
            f"finch / baseline: {f['tokens_per_s'] / b['tokens_per_s']:.2f}x tokens/s, "
            f"{f['peak_rss_gb'] / b['peak_rss_gb']:.0%} of the peak RSS, "
            f"eval loss {abs(f['eval_loss'] / b['eval_loss'] - 1):.1%} apart"
        )
    results["settings"] = {
        "model": args.model,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "samples": args.samples,
        "repeats": args.repeats,
        "dtype": system_info().profile.dtype,
        "baseline_thp": args.baseline_thp,
        "finch_gradient_checkpointing": args.gradient_checkpointing,
        "finch_forward_tokens": args.forward_tokens,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    console.print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
