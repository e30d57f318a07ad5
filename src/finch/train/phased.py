"""Phased training (LAB): phase 1 on the knowledge rows, phase 2 on the skills rows plus the replay buffer.

Each phase is an ordinary run of the loop in its own folder under the run directory (phase-1-knowledge,
phase-2-skills), so each resumes from its own checkpoints and a finished phase is never trained again. Phase 2
starts from phase 1's best adapter; the run's result is the adapter with the lowest eval loss of either phase,
copied to the run directory so that it is a model reference like any other run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from finch.train.checkpoint import latest_checkpoint
from finch.train.config import TrainConfig
from finch.train.context import RunContext
from finch.train.loop import TrainData, TrainResult, train
from finch.train.run_dir import RunFiles, plot_loss, write_run_yaml

RUN_OWN_FILES = {"run.yaml", "train_log.jsonl", "loss.png"}


def phase_dir(run_dir: Path, index: int, phase: str) -> Path:
    return run_dir / f"phase-{index}-{phase}"


def finished_result(folder: Path) -> TrainResult:
    """A finished phase's result, read back from its run.yaml and log."""
    files = RunFiles(folder)
    result = files.read_run_yaml()["result"]
    return TrainResult(
        run_dir=folder,
        steps=result["steps"],
        train_loss=result["train_loss"],
        eval_loss=result["eval_loss"],
        tokens_per_s=result["tokens_per_s"],
        peak_rss_gb=result["peak_rss_gb"],
        log=files.read_log(),
        best_eval_loss=result.get("best_eval_loss"),
    )


def adapter_of(result: TrainResult) -> Path:
    """A phase's best adapter or model (by eval loss), or its final one when it had no evals."""
    best = result.run_dir / "best"
    return best if best.is_dir() else result.run_dir


def train_phased(
    config: TrainConfig,
    phase_data: dict[str, TrainData],
    run: RunContext,
    on_step: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] = lambda message: None,
) -> TrainResult:
    """Each phase in `phase_data` (from load_phase_data) trained in turn, each from the last one's best adapter;
    the run's adapter is the best phase's."""
    phases = list(phase_data)
    files = RunFiles(run.run_dir)
    lineage = {**run.lineage(), "phases": phases}
    if not run.resume:
        files.start_log()
    write_run_yaml(files, config, lineage, status="running")
    results: list[TrainResult] = []
    for index, phase in enumerate(phases, 1):
        steps_before = sum(r.steps for r in results)
        init_adapter = adapter_of(results[-1]) if results else None
        where = (index, len(phases), phase)
        result = train_phase(config, phase_data[phase], run, where, steps_before, init_adapter, on_step, on_message)
        results.append(result)

    scored = [r for r in results if r.best_eval_loss is not None]
    best = min(scored, key=lambda r: r.best_eval_loss) if scored else results[-1]
    best_index = results.index(best) + 1
    copy_outputs(best.run_dir, adapter_of(best), run.run_dir)
    log, offset = [], 0
    for index, result in enumerate(results, 1):
        log += [{**r, "phase": index, "phase_step": r["step"], "step": offset + r["step"]} for r in result.log]
        offset += result.steps
    files.write_log(log)
    plot_loss(log, run.run_dir / "loss.png")
    outcome = {
        "steps": offset,
        "train_loss": results[-1].train_loss,
        "eval_loss": best.best_eval_loss,
        "best_phase": best_index,
        "phase_eval_losses": [r.best_eval_loss for r in results],
        "tokens_per_s": round(sum(r.tokens_per_s * r.steps for r in results) / max(offset, 1), 2),
        "peak_rss_gb": max(r.peak_rss_gb for r in results),
    }
    data_hash = RunFiles(results[0].run_dir).read_run_yaml().get("data_hash")
    write_run_yaml(files, config, {**lineage, "data_hash": data_hash}, status="finished", result=outcome)
    on_message(f"best eval loss in phase {best_index} ({phases[best_index - 1]}): the run's adapter")
    return TrainResult(
        run_dir=run.run_dir,
        steps=offset,
        train_loss=results[-1].train_loss,
        eval_loss=best.best_eval_loss,
        tokens_per_s=outcome["tokens_per_s"],
        peak_rss_gb=outcome["peak_rss_gb"],
        log=log,
        best_eval_loss=best.best_eval_loss,
    )


def train_phase(
    config: TrainConfig,
    data: TrainData,
    run: RunContext,
    where: tuple[int, int, str],
    steps_before: int,
    init_adapter: Path | None,
    on_step: Callable[[dict], None] | None,
    on_message: Callable[[str], None],
) -> TrainResult:
    """One phase, `where` = (its number, how many phases, its name), trained in its own folder; a finished phase
    is read back, never trained again."""
    index, count, phase = where
    folder = phase_dir(run.run_dir, index, phase)
    if RunFiles(folder).read_run_yaml().get("status") == "finished":
        on_message(f"phase {index} ({phase}) already finished; skipping it")
        return finished_result(folder)
    resuming = run.resume and latest_checkpoint(folder) is not None
    on_message(f"phase {index} of {count}: {phase} rows" + (" (resuming)" if resuming else ""))

    def phase_step(record: dict) -> None:
        if on_step:
            on_step({**record, "phase": index, "run_step": steps_before + record["step"]})

    return train(config, data, run.inside(folder, resuming), phase_step, on_message, init_adapter)


def copy_outputs(phase_folder: Path, adapter: Path, run_dir: Path) -> None:
    """The best phase's adapter (or whole model, for --method full) and tokenizer files, into the run directory,
    so that it is a model reference like any other run."""
    for path in adapter.iterdir():
        if path.is_file() and path.name not in RUN_OWN_FILES:
            shutil.copyfile(path, run_dir / path.name)
    for path in phase_folder.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "chat")):
            shutil.copyfile(path, run_dir / path.name)
