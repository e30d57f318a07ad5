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

from finch.errors import UsageError
from finch.train.checkpoint import latest_checkpoint
from finch.train.config import TrainConfig
from finch.train.data import data_files, read_rows_with_kind, row_phase
from finch.train.loop import TrainResult, load_data, train
from finch.train.run_dir import RunFiles, plot_loss, write_run_yaml

PHASES = ("knowledge", "skills")
RUN_OWN_FILES = {"run.yaml", "train_log.jsonl", "loss.png"}


def phase_dir(run_dir: Path, index: int, phase: str) -> Path:
    return run_dir / f"phase-{index}-{phase}"


def phases_present(config: TrainConfig) -> list[str]:
    """The phases that have rows to train on; a replay buffer alone makes a skills phase."""
    assert config.data is not None
    train_file, _ = data_files(config.data)
    present = {row_phase(kind) for _, kind in read_rows_with_kind(train_file)}
    if config.replay is not None and config.replay_ratio > 0:
        present.add("skills")
    return [phase for phase in PHASES if phase in present]


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
    hf_dir: Path,
    base_model: str,
    run_dir: Path,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] = lambda message: None,
) -> TrainResult:
    phases = phases_present(config)
    if not phases:
        raise UsageError(f"--phased: {config.data} has no rows to train on.")
    files = RunFiles(run_dir)
    lineage = {"base_model": base_model, "base_model_path": str(hf_dir), "phases": phases}
    if not resume:
        files.start_log()
    write_run_yaml(files, config, lineage, status="running")

    results: list[TrainResult] = []
    init_adapter = None
    for index, phase in enumerate(phases, 1):
        folder = phase_dir(run_dir, index, phase)
        if RunFiles(folder).read_run_yaml().get("status") == "finished":
            on_message(f"phase {index} ({phase}) already finished; skipping it")
            result = finished_result(folder)
        else:
            resuming = resume and latest_checkpoint(folder) is not None
            on_message(f"phase {index} of {len(phases)}: {phase} rows" + (" (resuming)" if resuming else ""))
            step_offset = sum(r.steps for r in results)

            def phase_step(record: dict, index=index, step_offset=step_offset) -> None:
                if on_step:
                    on_step({**record, "phase": index, "run_step": step_offset + record["step"]})

            result = train(
                config,
                load_data(config, hf_dir, phase=phase),
                hf_dir,
                base_model,
                folder,
                resume=resuming,
                on_step=phase_step,
                on_message=on_message,
                init_adapter=init_adapter,
            )
        results.append(result)
        init_adapter = adapter_of(result)

    scored = [r for r in results if r.best_eval_loss is not None]
    best = min(scored, key=lambda r: r.best_eval_loss) if scored else results[-1]
    best_index = results.index(best) + 1
    for path in adapter_of(best).iterdir():  # the adapter, or the whole model for --method full
        if path.is_file() and path.name not in RUN_OWN_FILES:
            shutil.copyfile(path, run_dir / path.name)
    for name in (p.name for p in best.run_dir.iterdir() if p.name.startswith(("tokenizer", "special_tokens", "chat"))):
        shutil.copyfile(best.run_dir / name, run_dir / name)

    log, offset = [], 0
    for index, result in enumerate(results, 1):
        log += [{**r, "phase": index, "phase_step": r["step"], "step": offset + r["step"]} for r in result.log]
        offset += result.steps
    files.start_log()
    for record in log:
        files.append_log(record)
    plot_loss(log, run_dir / "loss.png")
    outcome = {
        "steps": offset,
        "train_loss": results[-1].train_loss,
        "eval_loss": best.best_eval_loss,
        "best_phase": best_index,
        "phase_eval_losses": [r.best_eval_loss for r in results],
        "tokens_per_s": round(sum(r.tokens_per_s * r.steps for r in results) / max(offset, 1), 2),
        "peak_rss_gb": max(r.peak_rss_gb for r in results),
    }
    phase_lineage = RunFiles(results[0].run_dir).read_run_yaml()
    lineage.update({k: phase_lineage[k] for k in ("data_hash", "dtype", "device") if k in phase_lineage})
    write_run_yaml(files, config, lineage, status="finished", result=outcome)
    on_message(f"best eval loss in phase {best_index} ({phases[best_index - 1]}): the run's adapter")
    return TrainResult(
        run_dir=run_dir,
        steps=offset,
        train_loss=results[-1].train_loss,
        eval_loss=best.best_eval_loss,
        tokens_per_s=outcome["tokens_per_s"],
        peak_rss_gb=outcome["peak_rss_gb"],
        log=log,
        best_eval_loss=best.best_eval_loss,
    )
