"""`finch study iterations` and `finch study hparams`: views over finch.study."""

from __future__ import annotations

from pathlib import Path

import typer

from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import err, out
from finch.cli.views import TrainProgress
from finch.config import load_settings
from finch.errors import SettingError
from finch.stage_config import load_stage_config
from finch.study.hparams import HparamsConfig
from finch.study.iterations import IterationsConfig

study_app = typer.Typer(
    help="Studies over many runs: quality vs iterations, hyperparameter search.", no_args_is_help=True
)

CONFIG_FILE = typer.Option(None, "--config", help="A YAML file with any of these settings; flags win.")


def run_study(run, config_type, config_file: Path | None, settings: dict, stop_views, **callbacks):
    """A study's settings from flags and --config, then the study in the workspace (studies go in evals_dir); a bad
    setting is told as the flag or the file's key that set it."""
    overrides = config_values(config_type, settings)
    workspace = load_settings()
    try:
        config = load_stage_config(config_type, config_file, overrides, "study")
        return run(
            config,
            workspace.path("models_dir"),
            workspace.path("evals_dir"),
            workspace.config.model,
            on_message=lambda message: err.print(message, markup=False),
            **callbacks,
        )
    except SettingError as e:
        raise as_flags(e, set(overrides), config_file=config_file) from None
    finally:
        stop_views()


def iterations(config_file: Path = CONFIG_FILE, **settings) -> None:
    """Train once with a checkpoint at each step, score the base and every checkpoint on held-out questions, write a
    blind grading sheet (read back with --import), and plot quality against iterations with a recommendation."""
    from finch.study.iterations import run_iterations

    progress = TrainProgress()
    report = run_study(run_iterations, IterationsConfig, config_file, settings, progress.stop, on_step=progress.update)
    folder = Path(report["run"]).parent
    out.print((folder / "report.md").read_text(encoding="utf-8"), markup=False)
    out.print(f"study folder: {folder}")


def hparams(config_file: Path = CONFIG_FILE, **settings) -> None:
    """Search training settings with Optuna (TPE, median pruning on the eval loss, a SQLite study that a killed
    search continues); writes best.yaml for finch train --config, trials.csv and plots."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from finch.study.hparams import run_hparams

    columns = [TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}")]
    bar = Progress(*columns, TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err)
    task = None

    def on_trial(outcome, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("trials", total=total, completed=0, last="")
        value = "-" if outcome.value is None else f"{outcome.value:.4f}"
        bar.update(task, completed=done, last=f"trial {outcome.number}: {outcome.state.lower()} {value}")

    result = run_study(run_hparams, HparamsConfig, config_file, settings, bar.stop, on_trial=on_trial)
    counts = {state: sum(t.state == state for t in result.trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
    out.print(f"{counts['COMPLETE']} completed, {counts['PRUNED']} pruned, {counts['FAIL']} failed: {result.output}")
    if result.best is not None:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best.params.items()
        )
        out.print(f"best: trial {result.best.number}, eval loss {result.best.value:.4f} ({params})")
        out.print(f"train it: finch train --config {result.train_yaml}")
    for plot in result.plots:
        out.print(f"plot: {plot}")


with_config_options(iterations, IterationsConfig, {"imports": ["--import"]})
with_config_options(hparams, HparamsConfig)
study_app.command("iterations")(iterations)
study_app.command("hparams")(hparams)
