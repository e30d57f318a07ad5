"""`finch train`: flags and train.yaml into a TrainConfig, then the library's start_run with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from finch.cli.common import human_bytes
from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import err, out
from finch.cli.views import TrainProgress
from finch.config import load_settings
from finch.train.config import TrainConfig


def train(
    config_file: Path = typer.Option(None, "--config", help="train.yaml with any of these settings; flags win."),
    resume: str = typer.Option(None, help="Continue a killed run: its directory, or 'last'."),
    force: bool = typer.Option(False, "--force", help="Start even when the plan says the run will not fit in memory."),
    **settings,
) -> None:
    """Fine-tune a model with LoRA on chat data; the run directory is a model reference for chat and serve. Every
    setting is a flag and a train.yaml key (--config)."""
    from finch.errors import SettingError
    from finch.train import load_train_config
    from finch.train.runs import start_run

    overrides = config_values(TrainConfig, settings)
    try:
        config = load_train_config(config_file, overrides)
    except SettingError as e:
        raise as_flags(e, set(overrides)) from None
    workspace = load_settings()
    progress = TrainProgress()

    def on_start(resolved, run_dir: Path) -> None:
        err.print(f"[bold]run directory:[/] {run_dir}")
        err.print(yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False).rstrip(), markup=False)

    try:
        result = start_run(
            config,
            workspace.path("models_dir"),
            workspace.path("runs_dir"),
            workspace.config.model,
            resume=resume,
            on_step=progress.update,
            on_message=lambda message: err.print(message, markup=False),
            on_start=on_start,
            before_start=(lambda config, hf_dir: None) if force else check_it_fits,
        )
    except SettingError as e:
        raise as_flags(e, set(overrides), config_file=config_file) from None
    finally:
        progress.stop()
    eval_text = f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else ""
    out.print(
        f"trained {result.steps} steps: train loss {result.train_loss:.4f}{eval_text}, "
        f"{result.tokens_per_s:.0f} tokens/s, peak RSS {result.peak_rss_gb:.1f} GB\n"
        f"adapter and logs: {result.run_dir}\n"
        f"try it: finch chat --model {result.run_dir}"
    )
    from finch.train.checkpoint import disk_use  # imports torch: after training, not at every CLI start

    kept, size = disk_use(result.run_dir)
    if kept:
        out.print(f"checkpoints: {kept} kept in {result.run_dir / 'checkpoints'} ({human_bytes(size)}), each a model")


def check_it_fits(config: TrainConfig, hf_dir: Path) -> None:
    """The plan's memory estimate against this machine, before a run directory exists (finch plan train shows it
    whole); refuses with the plan's advice."""
    from finch.plan.train_plan import PlanConfig, plan_train, preflight

    preflight(plan_train(config, PlanConfig(), hf_dir / "config.json", config.model or str(hf_dir), None, None))


# --pipeline: the launcher's old name, accepted with a warning for one release
FLAG_ALIASES = {"model": ["-m"], "processes": ["--gpus"], "output": ["-o"], "launcher": ["--pipeline"]}
with_config_options(train, TrainConfig, FLAG_ALIASES)
