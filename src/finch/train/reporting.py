"""`--report-to tensorboard|mlflow|wandb`: the step records of train_log.jsonl, also sent to a tracker.

Each tracker is an optional package; asking for one that is not installed is a usage error before training starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from finch.errors import SettingError, UsageError
from finch.train.config import TRAIN_SETTINGS

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
METRICS = ("loss", "eval_loss", "lr", "grad_norm", "tokens_per_s", "peak_rss_gb")


def check_installed(trackers: list[str]) -> None:
    for tracker in trackers:
        if tracker not in PACKAGES:
            raise SettingError(
                TRAIN_SETTINGS, "report_to", f"{tracker}: not a tracker finch knows; use {', '.join(PACKAGES)}."
            )
        if importlib.util.find_spec(PACKAGES[tracker]) is None:
            raise UsageError(
                f"--report-to {tracker}: the {PACKAGES[tracker]} package is not installed; "
                f"pip install {PACKAGES[tracker]}, or drop the flag."
            )


def open_trackers(trackers: list[str], run_dir: Path, config: dict) -> tuple[Callable[[dict], None], Callable]:
    """(log one step record, close) for every tracker asked for."""
    loggers, closers = [], []
    for tracker in trackers:
        if tracker == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

            def log_tensorboard(step, metrics, writer=writer):
                for name, value in metrics.items():
                    writer.add_scalar(f"train/{name}", value, step)

            loggers.append(log_tensorboard)
            closers.append(writer.close)
        elif tracker == "mlflow":
            import mlflow

            mlflow.start_run(run_name=run_dir.name)
            mlflow.log_params({k: str(v) for k, v in config.items()})
            loggers.append(lambda step, metrics: mlflow.log_metrics(metrics, step=step))
            closers.append(mlflow.end_run)
        elif tracker == "wandb":
            import wandb

            run = wandb.init(project="finch", name=run_dir.name, dir=str(run_dir), config=config)
            loggers.append(lambda step, metrics, run=run: run.log(metrics, step=step))
            closers.append(run.finish)

    def log(record: dict) -> None:
        step = record.get("run_step", record["step"])  # phased runs count steps across phases
        metrics = {name: float(record[name]) for name in METRICS if name in record}
        for logger in loggers:
            logger(step, metrics)

    def close() -> None:
        for closer in closers:
            closer()

    return log, close
