"""The run directory's own files: run.yaml (config and lineage), train_log.jsonl and loss.png."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from finch import __version__
from finch.fileio import atomic_write_text
from finch.plotting import pyplot, save_figure
from finch.train.config import TrainConfig


class RunFiles:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.run_yaml = run_dir / "run.yaml"
        self.log = run_dir / "train_log.jsonl"

    def read_run_yaml(self) -> dict:
        if not self.run_yaml.is_file():
            return {}
        return yaml.safe_load(self.run_yaml.read_text(encoding="utf-8")) or {}

    def start_log(self) -> None:
        atomic_write_text(self.log, "")

    def read_log(self) -> list[dict]:
        if not self.log.is_file():
            return []
        records = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: what follows it was never checkpointed either
        return records

    def truncate_log(self, step: int) -> None:
        """Drop records after the checkpoint being resumed from; those steps run again."""
        self.write_log([r for r in self.read_log() if r["step"] <= step])

    def write_log(self, records: list[dict]) -> None:
        atomic_write_text(self.log, "".join(json.dumps(r) + "\n" for r in records))

    def append_log(self, record: dict) -> None:
        """One record, on disk when this returns (a step's record outlives a crash or a power cut)."""
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def write_run_yaml(files: RunFiles, config: TrainConfig, lineage: dict, status: str, result: dict | None = None):
    data = {
        "finch_version": __version__,
        **lineage,
        "status": status,
        "config": config.model_dump(mode="json"),
    }
    if result:
        data["result"] = result
    atomic_write_text(files.run_yaml, yaml.safe_dump(data, sort_keys=False))


def resolved_config(run_dir: Path) -> TrainConfig:
    return TrainConfig.model_validate(RunFiles(run_dir).read_run_yaml()["config"])


def plot_loss(log: list[dict], path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], label="train loss", linewidth=1)
    evals = [r for r in log if "eval_loss" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (nats per labelled token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
