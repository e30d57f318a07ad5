"""From a config to a run: resolve the base model, pick the run directory, or find the run to resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from finch.errors import SettingError, UsageError
from finch.models.info import count_parameters
from finch.train.config import TRAIN_SETTINGS, TrainConfig, default_lr
from finch.train.context import RunContext, concrete_launcher, training_device_and_dtype
from finch.train.data import TrainData, data_files, load_data, load_phase_data
from finch.train.distributed import launch
from finch.train.dpo import check_dpo_settings, read_preferences, train_dpo
from finch.train.loop import TrainResult, train
from finch.train.phased import finished_result, train_phased
from finch.train.reporting import check_installed, open_trackers
from finch.train.run_dir import RunFiles, resolved_config


def base_reference(resolved, hf_dir: Path) -> str:
    """What run.yaml records as the base: a built-in name or hub id (portable), else the absolute HF directory."""
    return resolved.name if resolved.kind in ("builtin", "hub") else str(hf_dir)


def find_run(resume: str, runs_dir: Path) -> Path:
    """`--resume DIR`, or `--resume last` for the newest run in the runs folder."""
    if resume == "last":
        runs = sorted((p for p in runs_dir.glob("*") if (p / "run.yaml").is_file()), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UsageError(f"--resume last: no runs in {runs_dir} yet.")
        return runs[-1]
    path = Path(resume).expanduser().resolve()
    if not (path / "run.yaml").is_file():
        raise UsageError(f"--resume {resume}: not a run directory (no run.yaml there).")
    return path


def check_method_fits_device(config: TrainConfig, device: str) -> None:
    """QLoRA's 4-bit base is bitsandbytes NF4, which trains on CUDA only: say so before anything is prepared."""
    if config.method == "qlora" and device != "cuda":
        raise SettingError(
            TRAIN_SETTINGS,
            "method",
            f"qlora: bitsandbytes NF4 needs a CUDA GPU and this machine trains on {device}; "
            "use lora (same adapter, unquantised base).",
        )


def start_run(
    config: TrainConfig,
    models_dir: Path,
    runs_dir: Path,
    default_model: str,
    resume: str | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] = lambda message: None,
    on_start: Callable[[TrainConfig, Path], None] = lambda config, run_dir: None,
    before_start: Callable[[TrainConfig, Path], None] = lambda config, hf_dir: None,
) -> TrainResult:
    """Check the settings and the data, prepare the model, then train a new run (or resume one). `before_start`
    sees the settings and the model's folder once everything is checked and before a run directory exists (the
    CLI's memory pre-flight)."""
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model

    if resume:
        run_dir = find_run(resume, runs_dir)
        config = resolved_config(run_dir)  # a resumed run keeps the settings it started with
        saved = RunFiles(run_dir).read_run_yaml()
        if saved.get("status") == "finished":
            raise UsageError(f"--resume {resume}: that run already finished ({run_dir}).")
    config = concrete_launcher(config)
    device, dtype = training_device_and_dtype(config)
    check_method_fits_device(config, device)
    check_installed(config.report_to)
    if config.data is None:
        raise SettingError(
            TRAIN_SETTINGS, "data", "Field required: a dataset directory (train.jsonl, test.jsonl) or a JSONL file."
        )
    data_files(config.data)  # bad paths fail now, not after the model is prepared
    resolved = resolve_model(config.model or default_model, models_dir)
    if resolved.kind == "adapter":
        raise SettingError(
            TRAIN_SETTINGS,
            "model",
            f"{config.model} is a trained adapter; training on top of one is not supported yet.",
        )
    hf_dir = prepare_model(resolved)
    if config.lr is None:
        config = config.model_copy(update={"lr": default_lr(count_parameters(hf_dir)[0], config.method)})
    data = read_data(config, hf_dir)  # tokenized once, here: bad rows fail before a run directory exists
    if not resume:
        before_start(config, hf_dir)
    config = config.model_copy(
        update={
            "model": config.model or default_model,
            "data": config.data.resolve(),
            "replay": config.replay.resolve() if config.replay else None,
        }
    )
    if not resume:
        run_dir = config.output or runs_dir / f"{resolved.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = run_dir.resolve()
        if (run_dir / "run.yaml").exists():
            raise SettingError(
                TRAIN_SETTINGS, "output", f"{run_dir} already holds a run; pick another folder or resume it."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        config = config.model_copy(update={"output": run_dir})
    on_start(config, run_dir)
    report, close_trackers = open_trackers(config.report_to, run_dir, config.model_dump(mode="json"))

    def step(record: dict) -> None:
        report(record)
        if on_step:
            on_step(record)

    run = RunContext(hf_dir, base_reference(resolved, hf_dir), run_dir, bool(resume), device, dtype)
    try:
        return launch_run(config, data, run, step, on_message)
    finally:
        close_trackers()


def read_data(config: TrainConfig, hf_dir: Path) -> TrainData | dict[str, TrainData] | None:
    """What the run trains on: the tokenized data, or each phase's; a DPO run's preference rows are checked here and
    read by TRL."""
    assert config.data is not None
    if config.method == "dpo":
        check_dpo_settings(config)
        for path in data_files(config.data):
            if path is not None:
                read_preferences(path)
        return None
    return load_phase_data(config, hf_dir) if config.phased else load_data(config, hf_dir)


def launch_run(
    config: TrainConfig,
    data: TrainData | dict[str, TrainData] | None,
    run: RunContext,
    on_step: Callable[[dict], None],
    on_message: Callable[[str], None],
) -> TrainResult:
    """The run, by the trainer its config names: DPO, phased, N processes, or the loop in this one."""
    if config.method == "dpo":
        return train_dpo(config, run, on_step, on_message)
    if isinstance(data, dict):
        return train_phased(config, data, run, on_step, on_message)
    assert data is not None
    if config.launcher == "accelerated":
        launch(config, data, run, on_message)
        result = finished_result(run.run_dir)
        for record in result.log:  # the workers write the log; trackers and progress see it at the end
            on_step({**record, "total_steps": result.steps})
        return result
    return train(config, data, run, on_step, on_message)
