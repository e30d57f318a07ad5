"""Hyperparameter search over finch's training settings with Optuna: a TPE sampler, a median pruner on the eval
losses a run reports while it trains, and SQLite storage, so a killed search continues with the trials it still
owes. Each trial is an ordinary finch run in the study folder; the best one's settings come out as a train.yaml.
"""

from __future__ import annotations

import csv
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finch.errors import SettingError, UsageError
from finch.fileio import atomic_write_text
from finch.plotting import pyplot, save_figure
from finch.stage_config import setting_error
from finch.train.config import TrainConfig, load_train_config
from finch.train.data import data_files

# What is searched when no space is given: the settings users of every tool ask about. The learning rate spans a
# decade around finch's default for small models (2e-3), the rank the usual powers of two; alpha follows the rank
# (alpha = 2 x rank, finch's default ratio) unless the space names it.
DEFAULT_SPACE: dict[str, dict | list] = {
    "lr": {"low": 5e-4, "high": 5e-3, "log": True},
    "lora_rank": [4, 8, 16, 32],
    "lora_dropout": {"low": 0.0, "high": 0.1},
}
LORA_SETTINGS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets")
SCHEDULE_SETTINGS = ("lr", "epochs", "max_steps", "batch_size", "grad_accum", "warmup_ratio", "weight_decay")
SEARCHABLE = {*LORA_SETTINGS, *SCHEDULE_SETTINGS, "max_seq_len"}
STUDY_NAME = "finch-hparams"


class HparamsConfig(BaseModel):
    """`finch study hparams`: the fixed training settings (a train.yaml), the space searched and the budget."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(None, description="Dataset directory with train.jsonl and test.jsonl (the objective).")
    model: str | None = Field(None, description="Base model reference; none: the configured model.")
    train_config: Path | None = Field(None, description="train.yaml with the settings every trial keeps.")
    space: Path | None = Field(
        None,
        description="YAML of the settings searched, key: [choices] or key: {low, high, log}; none: lr, lora_rank, "
        "lora_dropout.",
    )
    trials: int = Field(20, ge=1, description="Trials to finish (completed or pruned), counting earlier runs.")
    minutes: float | None = Field(None, gt=0, description="Stop starting trials after this many minutes.")
    evals: int = Field(4, ge=1, description="Eval losses each trial reports (the pruner compares them).")
    seed: int = Field(42, description="The sampler's seed.")
    output: Path | None = Field(
        None, description="Study folder; none: evals/hparams-<digest of these settings>, so the same command resumes."
    )


@dataclass
class TrialOutcome:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    params: dict
    steps: int | None


@dataclass
class HparamsResult:
    output: Path
    best: TrialOutcome | None
    trials: list[TrialOutcome]
    train_yaml: Path | None
    plots: list[Path]


def read_space(path: Path | None) -> dict[str, dict | list]:
    """The search space: each key a TrainConfig setting, each value a list of choices or a {low, high, log} range."""
    if path is None:
        return DEFAULT_SPACE
    try:
        space = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"{path}: cannot read it as YAML ({getattr(e, 'strerror', None) or e}).") from None
    if not isinstance(space, dict) or not space:
        raise UsageError(f"{path}: expected a mapping of settings to [choices] or {{low, high, log}}.")
    for key, value in space.items():
        if key not in SEARCHABLE:
            raise UsageError(f"{path}: {key}: not a searchable setting; choose from {', '.join(sorted(SEARCHABLE))}.")
        ranged = isinstance(value, dict) and {"low", "high"} <= set(value) <= {"low", "high", "log"}
        if not ranged and not (isinstance(value, list) and value):
            raise UsageError(f"{path}: {key}: give a list of choices or {{low: .., high: ..}} (log: true optional).")
        if ranged and not value["low"] < value["high"]:
            raise UsageError(f"{path}: {key}: low must be below high.")
    return space


def suggest(trial, space: dict[str, dict | list]) -> dict:
    """One trial's settings drawn from the space (alpha = 2 x rank unless alpha is searched too)."""
    values = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            values[key] = trial.suggest_categorical(key, spec)
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    if "lora_rank" in values and "lora_alpha" not in space:
        values["lora_alpha"] = 2.0 * values["lora_rank"]
    return values


def base_config(config: HparamsConfig) -> TrainConfig:
    """The settings every trial keeps: the train.yaml, with data and model from the study's own flags."""
    overrides = {"data": config.data, "model": config.model}
    train = load_train_config(config.train_config, overrides).model_copy(update={"output": None})
    if train.data is None:
        raise SettingError("study settings", "data", "Field required: a dataset directory with a test.jsonl.")
    if data_files(train.data)[1] is None:
        raise SettingError("study settings", "data", f"{train.data}: no test.jsonl; the trials are scored on it.")
    if train.method == "dpo" or train.phased or train.launcher == "accelerated":
        raise SettingError("study settings", "train_config", "the search trains lora, full or qlora runs, unphased.")
    return train


def settings_digest(config: BaseModel, *ignored: str) -> str:
    """A short name for a study's settings, so the same command (without --output) finds the same study folder."""
    import hashlib

    text = config.model_dump_json(exclude=set(ignored))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def open_study(folder: Path, seed: int, startup: int):
    """The study stored in folder/study.db: new, or the one a killed search left. Trials beat a heartbeat into the
    database; one whose beat stopped (its process was killed) is marked failed and queued again with the same
    settings, so the search owes exactly the trials it never finished."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{folder / 'study.db'}",
        heartbeat_interval=1,
        grace_period=2,
        failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=2),
    )
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0),
    )
    if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        time.sleep(2.5)  # a trial counts as stale once its last beat is older than the grace period
        optuna.storages.fail_stale_trials(study)
    return study


def run_hparams(
    config: HparamsConfig,
    models_dir: Path,
    studies_dir: Path,
    default_model: str,
    on_trial: Callable[[TrialOutcome, int, int], None] = lambda outcome, done, total: None,
    on_message: Callable[[str], None] = lambda message: None,
) -> HparamsResult:
    """Run (or continue) the search until `trials` trials have finished, completed or pruned, or `minutes` pass."""
    import optuna

    from finch.train.runs import start_run

    space = read_space(config.space)
    base = base_config(config)
    folder = (
        config.output or studies_dir / f"hparams-{settings_digest(config, 'output', 'trials', 'minutes')}"
    ).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    startup = max(2, min(5, config.trials // 4))  # trials drawn at random, and never pruned, before TPE learns
    study = open_study(folder, config.seed, startup)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done:
        on_message(f"continuing {folder}: {done} of {config.trials} trials already finished")

    def objective(trial) -> float:
        values = suggest(trial, space)
        update = {**values, "output": folder / "trials" / f"trial-{trial.number:03d}", "save_every": 0}
        try:
            train = TrainConfig.model_validate({**base.model_dump(), **update})
        except ValidationError as e:
            raise setting_error(e, str(config.space or "the default space")) from None
        steps = planned_steps(train, models_dir, default_model)
        train = train.model_copy(update={"eval_every": max(1, steps // config.evals)})
        trial.set_user_attr("settings", train.model_dump(mode="json"))  # what best.yaml gives back, exactly

        def report(record: dict) -> None:
            if "eval_loss" in record:
                trial.report(record["eval_loss"], record["step"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"eval loss {record['eval_loss']:.4f} at step {record['step']}")

        result = start_run(train, models_dir, studies_dir, default_model, on_step=report)
        trial.set_user_attr("steps", result.steps)
        assert result.eval_loss is not None
        return result.eval_loss

    def after_trial(study, frozen) -> None:
        nonlocal done
        done += frozen.state in finished
        on_trial(outcome_of(frozen), done, config.trials)

    remaining = config.trials - done
    minutes = training_minutes(base, models_dir, default_model) if remaining > 0 else None
    if minutes is not None:
        budget = f", stopping after {config.minutes:g}" if config.minutes else ""
        on_message(
            f"about {minutes:.1f} min a trial (finch plan, the base settings, unpruned): up to "
            f"{minutes * remaining:.0f} min for the {remaining} trials owed{budget}"
        )
    if remaining > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=config.minutes * 60 if config.minutes else None,
                callbacks=[after_trial],
                catch=(),
            )
    return write_outputs(study, folder)


def training_minutes(train: TrainConfig, models_dir: Path, default_model: str) -> float | None:
    """finch plan's estimate of a run's training time (its FLOPs over this machine's measured matmul rate)."""
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.plan.train_plan import PlanConfig, plan_train

    model = train.model or default_model
    hf_dir = prepare_model(resolve_model(model, models_dir))
    plan = plan_train(train, PlanConfig(), hf_dir / "config.json", model, hf_dir, models_dir.parent / "plan_probe.json")
    return None if plan.time.seconds is None else plan.time.seconds / 60


def planned_steps(train: TrainConfig, models_dir: Path, default_model: str) -> int:
    """How many optimiser steps the trial's run will take (for spacing its evals)."""
    if train.max_steps:
        return train.max_steps
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.train.data import load_data

    assert train.data is not None
    data = load_data(train, prepare_model(resolve_model(train.model or default_model, models_dir)))
    per_epoch = math.ceil(len(data.train.samples) / train.batch_size)
    return max(1, math.ceil(train.epochs * per_epoch / train.grad_accum))


def outcome_of(trial) -> TrialOutcome:
    steps = trial.user_attrs.get("steps") or (max(trial.intermediate_values) if trial.intermediate_values else None)
    value = trial.value
    if value is None and trial.intermediate_values:  # a pruned trial: its last reported eval loss
        value = trial.intermediate_values[max(trial.intermediate_values)]
    return TrialOutcome(trial.number, trial.state.name, value, dict(trial.params), steps)


def write_outputs(study, folder: Path) -> HparamsResult:
    """trials.csv, best.yaml (a train.yaml of the best trial, ready for finch train --config) and the plots."""
    outcomes = [outcome_of(t) for t in study.get_trials(deepcopy=False)]
    keys = sorted({k for o in outcomes for k in o.params})
    rows = [
        [
            o.number,
            o.state,
            "" if o.value is None else round(o.value, 6),
            o.steps or "",
            *(o.params.get(k, "") for k in keys),
        ]
        for o in outcomes
    ]
    with open(folder / ".trials.csv.tmp", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["trial", "state", "eval_loss", "steps", *keys], *rows])
    (folder / ".trials.csv.tmp").replace(folder / "trials.csv")
    complete = [o for o in outcomes if o.state == "COMPLETE"]
    best = min(complete, key=lambda o: o.value) if complete else None
    train_yaml = None
    if best is not None:
        trained = study.trials[best.number].user_attrs["settings"]  # the trial's own settings, as it trained
        settings = {k: v for k, v in trained.items() if v is not None and k != "output"}
        train_yaml = folder / "best.yaml"
        header = f"# trial {best.number} of {folder}: eval loss {best.value:.6f} after {best.steps} steps\n"
        atomic_write_text(train_yaml, header + yaml.safe_dump(settings, sort_keys=False))
    plots = write_plots(study, folder) if complete else []
    return HparamsResult(folder, best, outcomes, train_yaml, plots)


def write_plots(study, folder: Path) -> list[Path]:
    """Optimisation history, and parameter importances once there are enough finished trials to rank them."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    drawings = [("history.png", optuna_plots.plot_optimization_history)]
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) >= 3:
        drawings.append(("importances.png", optuna_plots.plot_param_importances))
    pyplot()  # the Agg backend before optuna draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw in drawings:
            try:
                axes = draw(study)
            except (ValueError, RuntimeError):  # e.g. importances of settings that never varied
                continue
            figure = axes.get_figure()
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()
            written.append(save_figure(figure, folder / name))
    return written
