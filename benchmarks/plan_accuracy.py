"""finch plan against measured runs on this machine: predicted peak memory and training time beside the peak RSS and
the time of the same `finch train` runs on the built-in model.

    python benchmarks/plan_accuracy.py [--json OUT] [--steps 8]

Each config trains in its own process (so its peak RSS is its own) on the same deterministic chat samples as
benchmarks/train_throughput.py; the measured time is the sum of the optimiser steps' times from train_log.jsonl
(loading and saving are not training), the predicted one is finch.plan's for the same steps of the same data.
Targets (issue 19): memory within 15%, time within 30%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from train_throughput import write_data  # noqa: E402

CONFIGS = {
    "lora, max_seq_len 256": {"method": "lora", "max_seq_len": 256},
    "lora, max_seq_len 1024": {"method": "lora", "max_seq_len": 1024},
    "full, max_seq_len 512": {"method": "full", "max_seq_len": 512, "lr": 1e-5},
    # not among the runs the constants were fitted on: a check that they hold elsewhere
    "lora r64, checkpointing, batch 8": {
        "method": "lora",
        "lora_rank": 64,
        "gradient_checkpointing": True,
        "batch_size": 8,
    },
    "full, in the backward pass, batch 1": {
        "method": "full",
        "max_seq_len": 512,
        "lr": 1e-5,
        "batch_size": 1,
        "optimizer_in_backward": True,
    },
    "full, 8-bit AdamW, batch 1": {
        "method": "full",
        "max_seq_len": 512,
        "lr": 1e-5,
        "batch_size": 1,
        "optimizer": "adamw8bit",
        "optimizer_in_backward": True,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--only", choices=list(CONFIGS), action="append")
    args = parser.parse_args()

    from finch.config import load_settings
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.plan.train_plan import PlanConfig, plan_train
    from finch.train.config import TrainConfig

    workspace = load_settings()
    models_dir = workspace.path("models_dir")
    hf_dir = prepare_model(resolve_model(workspace.config.model, models_dir))
    work = Path(tempfile.mkdtemp(prefix="finch-plan-bench-"))
    data = write_data(work / "data", 96, 8)
    rows = []
    for name in args.only or list(CONFIGS):
        settings = {"data": str(data), "max_steps": args.steps, "save_every": 0, "batch_size": 4}
        settings |= CONFIGS[name]
        config = TrainConfig.model_validate(settings)
        probe_cache = models_dir.parent / "plan_probe.json"
        plan = plan_train(config, PlanConfig(), hf_dir / "config.json", workspace.config.model, hf_dir, probe_cache)
        run_dir = work / name.replace(" ", "").replace(",", "-")
        (work / "train.yaml").write_text(yaml.safe_dump({**settings, "output": str(run_dir)}))
        command = [sys.executable, "-m", "finch.cli.main", "train", "--config", str(work / "train.yaml")]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        result = yaml.safe_load((run_dir / "run.yaml").read_text())["result"]
        log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
        seconds = sum(r["tokens"] / r["tokens_per_s"] for r in log)
        row = {
            "config": name,
            "predicted_gb": round(plan.memory.total_gb, 3),
            "measured_gb": result["peak_rss_gb"],
            "memory_error": round(plan.memory.total_gb / result["peak_rss_gb"] - 1, 3),
            "predicted_s": round(plan.time.seconds, 1),
            "measured_s": round(seconds, 1),
            "time_error": round(plan.time.seconds / seconds - 1, 3),
            "parts_gb": {k: round(v, 3) for k, v in plan.memory.parts.items()},
        }
        rows.append(row)
    print(f"{'config':<34}{'plan GB':>9}{'peak RSS':>10}{'error':>8}{'plan s':>9}{'measured s':>12}{'error':>8}")
    for r in rows:
        memory = f"{r['predicted_gb']:>9.2f}{r['measured_gb']:>10.2f}{r['memory_error']:>+8.0%}"
        print(f"{r['config']:<34}{memory}{r['predicted_s']:>9.1f}{r['measured_s']:>12.1f}{r['time_error']:>+8.0%}")
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
