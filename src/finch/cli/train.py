"""`finch train`: flags and train.yaml into a TrainConfig, then the library's start_run with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from finch.cli.ui import err, out
from finch.config import load_settings


def train(
    data: Path = typer.Option(None, "--data", help="Dataset directory (train.jsonl, test.jsonl) or a JSONL file."),
    model: str = typer.Option(None, "--model", "-m", help="Base model reference (default: the configured model)."),
    method: str = typer.Option(
        None,
        help="lora (default), qlora (4-bit NF4 base, CUDA only), full (every weight), or dpo on {prompt, chosen, "
        "rejected} rows (needs trl).",
    ),
    pipeline: str = typer.Option(
        None, help="auto or full: the single-device loop; accelerated: data-parallel processes (--gpus N)."
    ),
    processes: int = typer.Option(
        None, "--gpus", "--processes", help="--pipeline accelerated: processes (one per GPU; on CPU, gloo) (default 2)."
    ),
    max_steps: int = typer.Option(None, help="Optimiser steps; wins over --epochs."),
    epochs: float = typer.Option(None, help="Passes over the training data (default 10)."),
    lr: float = typer.Option(
        None,
        help="Peak learning rate, cosine schedule with warmup (default: by model size, 2e-3 under 600M parameters).",
    ),
    batch_size: int = typer.Option(None, help="Samples per micro-batch, packed into rows (default 4)."),
    grad_accum: int = typer.Option(None, help="Micro-batches per optimiser step (default 1)."),
    max_seq_len: int = typer.Option(None, help="Tokens per packed row; longer samples are skipped (default 1024)."),
    lora_rank: int = typer.Option(None, help="LoRA rank (default 16)."),
    lora_alpha: float = typer.Option(None, help="LoRA alpha (default 32)."),
    lora_dropout: float = typer.Option(None, help="LoRA dropout (default 0.05)."),
    lora_targets: str = typer.Option(None, help="Comma-separated module names, or all-linear (default)."),
    phased: bool = typer.Option(
        None, "--phased", help="LAB: knowledge rows first, then skills rows plus replay; the best eval loss wins."
    ),
    replay: Path = typer.Option(None, help="JSONL of chat rows mixed into the skills phase (or all the data)."),
    replay_ratio: float = typer.Option(None, help="Replay rows per training row of that phase (default 0.1)."),
    eval_every: int = typer.Option(None, help="Eval loss on test.jsonl every N steps (default: at the end)."),
    save_every: int = typer.Option(None, help="Checkpoint every N steps for --resume (default 50)."),
    report_to: str = typer.Option(None, help="Also log steps to tensorboard, mlflow and/or wandb (comma-separated)."),
    output: Path = typer.Option(None, "--output", "-o", help="Run directory (default: runs/<model>-<time>)."),
    resume: str = typer.Option(None, help="Continue a killed run: its directory, or 'last'."),
    config_file: Path = typer.Option(None, "--config", help="train.yaml with any of these settings; flags win."),
    seed: int = typer.Option(None, help="Seed for LoRA init, data order and dropout (default 42)."),
) -> None:
    """Fine-tune a model with LoRA on chat data; the run directory is a model reference for chat and serve."""
    from finch.train import load_train_config
    from finch.train.runs import start_run

    targets = lora_targets if lora_targets in (None, "all-linear") else [t.strip() for t in lora_targets.split(",")]
    overrides = {
        "data": data,
        "model": model,
        "method": method,
        "pipeline": pipeline,
        "processes": processes,
        "max_steps": max_steps,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "max_seq_len": max_seq_len,
        "lora_rank": lora_rank,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "lora_targets": targets,
        "phased": phased,
        "replay": replay,
        "replay_ratio": replay_ratio,
        "eval_every": eval_every,
        "save_every": save_every,
        "report_to": [t.strip() for t in report_to.split(",")] if report_to else None,
        "output": output,
        "seed": seed,
    }
    config = load_train_config(config_file, overrides)
    settings = load_settings()
    progress = TrainProgress()

    def on_start(resolved, run_dir: Path) -> None:
        err.print(f"[bold]run directory:[/] {run_dir}")
        err.print(yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False).rstrip(), markup=False)

    try:
        result = start_run(
            config,
            settings.path("models_dir"),
            settings.path("runs_dir"),
            settings.config.model,
            resume=resume,
            on_step=progress.update,
            on_message=lambda message: err.print(message, markup=False),
            on_start=on_start,
        )
    finally:
        progress.stop()
    eval_text = f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else ""
    out.print(
        f"trained {result.steps} steps: train loss {result.train_loss:.4f}{eval_text}, "
        f"{result.tokens_per_s:.0f} tokens/s, peak RSS {result.peak_rss_gb:.1f} GB\n"
        f"adapter and logs: {result.run_dir}\n"
        f"try it: finch chat --model {result.run_dir}"
    )


class TrainProgress:
    """A rich bar over optimiser steps with loss, tokens/s and ETA; starts at the first step."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None

    def update(self, record: dict) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=err,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=record.get("total_steps"), stats="")
        stats = f"loss {record['loss']:.4f}  {record['tokens_per_s']:.0f} tok/s"
        if "eval_loss" in record:
            stats += f"  eval {record['eval_loss']:.4f}"
        self.progress.update(self.task, completed=record["step"], total=record.get("total_steps"), stats=stats)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
