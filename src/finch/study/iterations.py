"""Quality against training iterations, the study of the paper behind finch: one run with a checkpoint at each
requested step, then the base and every checkpoint answer the same held-out questions (key facts, scored by fixed
rules) and the same prompts for people to grade (5 prompts x 3 samples, models hidden behind letters); grades come
back with `--import` from any number of graders. Every stage is kept in the study folder and skipped when done, so
a killed study continues where it stopped. The paper found 250 iterations worse than 100: only such a study shows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from finch.errors import SettingError
from finch.fileio import atomic_write_json, atomic_write_text
from finch.train.config import TrainConfig, load_train_config

SHARES = (0.1, 0.25, 0.5, 1.0)  # of the run, when no steps are given: the paper's 100/250/500/1000


class IterationsConfig(BaseModel):
    """`finch study iterations`."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(None, description="Dataset folder (train.jsonl, test.jsonl) from finch data generate.")
    model: str | None = Field(None, description="Base model reference; none: the configured model.")
    train_config: Path | None = Field(None, description="train.yaml with the run's other settings.")
    steps: list[int] = Field(
        default_factory=list,
        description="Checkpoint steps (comma-separated); none: 10%, 25%, 50% and all of the run the settings make.",
    )
    questions: Path | None = Field(
        None, description="Held-out knowledge questions: a dataset folder, test.jsonl or a taxonomy; none: --data's."
    )
    prompts: int = Field(5, ge=1, description="Prompts on the human grading sheet.")
    samples: int = Field(3, ge=1, description="Sampled answers per prompt and model on the sheet.")
    max_tokens: int = Field(128, ge=1, description="Tokens per answer.")
    imports: list[Path] = Field(default_factory=list, description="Graded copies of the sheet to read back.")
    output: Path | None = Field(
        None,
        description="Study folder; none: evals/iterations-<digest of these settings>, so the same command resumes.",
    )


def train_settings(config: IterationsConfig) -> TrainConfig:
    """The run's settings: the train.yaml, with data and model from the study's own flags."""
    train = load_train_config(config.train_config, {"data": config.data, "model": config.model})
    if train.data is None:
        raise SettingError("study settings", "data", "Field required: the dataset folder the run trains on.")
    if train.method == "dpo" or train.phased:
        raise SettingError("study settings", "train_config", "the study trains one unphased lora, qlora or full run.")
    return train


def checkpoint_steps(config: IterationsConfig, train: TrainConfig, planned: Callable[[TrainConfig], int]) -> list[int]:
    """The steps asked for, or shares of the run the settings make (at least 1 step apart)."""
    if config.steps:
        return sorted(set(config.steps))
    total = train.max_steps or planned(train)
    steps = sorted({max(1, round(share * total)) for share in SHARES})
    if len(steps) < 2:
        raise SettingError("study settings", "steps", f"the run is {total} steps: too short to study; give steps.")
    return steps


def run_iterations(
    config: IterationsConfig,
    models_dir: Path,
    studies_dir: Path,
    default_model: str,
    on_step: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] = lambda message: None,
) -> dict:
    """Train (or resume), evaluate what is not evaluated yet, and write report.json, report.md and the plots."""
    from finch.study.hparams import planned_steps, settings_digest, training_minutes
    from finch.study.plots import plot_mean_vs_steps, plot_per_prompt_vs_steps, plot_prompts_side_by_side
    from finch.train.run_dir import RunFiles

    name = f"iterations-{settings_digest(config, 'output', 'imports')}"
    folder = (config.output or studies_dir / name).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "study.json"
    if saved.is_file() and not config.imports:  # a killed study continues with the settings it started with
        config = IterationsConfig.model_validate({**json.loads(saved.read_text()), "imports": []})
        on_message(f"continuing the study in {folder}")
    train = train_settings(config)
    steps = checkpoint_steps(config, train, lambda t: planned_steps(t, models_dir, default_model))
    atomic_write_json(saved, {**config.model_dump(mode="json"), "steps": steps})

    run_dir = folder / "run"
    status = RunFiles(run_dir).read_run_yaml().get("status")
    if status != "finished":
        minutes = training_minutes(train.model_copy(update={"max_steps": max(steps)}), models_dir, default_model)
        if minutes is not None:
            on_message(
                f"training {max(steps)} steps: about {minutes:.0f} min (finch plan); then {len(steps) + 1} "
                f"models answer the held-out questions and the grading sheet's prompts"
            )
        train_run(
            train, steps, run_dir, status is not None, models_dir, studies_dir, default_model, on_step, on_message
        )
    log = RunFiles(run_dir).read_log()
    base = train.model or default_model
    models = {"base": base, **{f"step {s}": str(run_dir / "checkpoints" / f"step-{s:07d}") for s in steps}}
    step_of = {"base": 0, **{f"step {s}": s for s in steps}}

    key_facts, human = evaluate_models(config, train, models, folder, models_dir, on_message)
    table = study_table(models, step_of, log, key_facts, human)
    best = recommend(table, bool(human))
    score = "mean_grade" if human else "key_fact_fraction"
    per_prompt = human["per_prompt"] if human else per_question(key_facts, "key_fact_fraction")
    plots = [
        plot_per_prompt_vs_steps(folder / "score-per-prompt.png", per_prompt, step_of, score),
        plot_mean_vs_steps(folder / "mean-vs-steps.png", table, score, log),
        plot_prompts_side_by_side(folder / "prompts-side-by-side.png", per_prompt, score),
    ]
    report = {
        "steps": steps,
        "run": str(run_dir),
        "score": score,
        "table": table,
        "recommended": best,
        "plots": [str(p) for p in plots],
        "sheet": str(folder / "human" / "grading_sheet.csv"),
    }
    atomic_write_json(folder / "report.json", report)
    atomic_write_text(folder / "report.md", report_markdown(report, human is not None))
    return report


def evaluate_models(
    config: IterationsConfig,
    train: TrainConfig,
    models: dict[str, str],
    folder: Path,
    models_dir: Path,
    on_message: Callable[[str], None],
) -> tuple[dict, dict | None]:
    """The key-facts report of every model and, once grades are imported, the human report; each benchmark runs
    once per study (its report in the study folder), the grades are read again at every import."""
    from finch.evaluate.run import evaluate

    questions = config.questions or train.data
    key_facts_dir, human_dir = folder / "key_facts", folder / "human"
    if not (key_facts_dir / "report.json").is_file():
        on_message(f"key facts: {len(models)} models answer the held-out questions of {questions}")
        evaluate(models, "key_facts", questions, key_facts_dir, models_dir, max_tokens=config.max_tokens)
    if not (human_dir / "sheet.json").is_file():
        on_message(f"grading sheet: {config.prompts} prompts x {config.samples} samples x {len(models)} models")
        sheet = {"limit": config.prompts, "max_tokens": config.max_tokens, "samples": config.samples}
        evaluate(models, "human", train.data, human_dir, models_dir, **sheet)
    if config.imports:
        evaluate(models, "human", None, human_dir, models_dir, imports=list(config.imports))
    graded = json.loads((human_dir / "report.json").read_text())
    return json.loads((key_facts_dir / "report.json").read_text()), graded if graded.get("per_prompt") else None


def train_run(
    train: TrainConfig,
    steps: list[int],
    run_dir: Path,
    resume: bool,
    models_dir: Path,
    studies_dir: Path,
    default_model: str,
    on_step: Callable[[dict], None] | None,
    on_message: Callable[[str], None],
) -> None:
    """The run, checkpointed at every studied step (all kept) with an eval loss at each."""
    from finch.train.runs import start_run

    if resume:
        start_run(
            train, models_dir, studies_dir, default_model, resume=str(run_dir), on_step=on_step, on_message=on_message
        )
        return
    settings = {
        "output": run_dir,
        "max_steps": max(steps),
        "checkpoint_steps": steps,  # each also gets an eval loss
        "keep_checkpoints": "all",
        "save_every": 0,
        "early_stopping_patience": 0,
    }
    study_run = TrainConfig.model_validate({**train.model_dump(), **settings})
    start_run(study_run, models_dir, studies_dir, default_model, on_step=on_step, on_message=on_message)


def per_question(report: dict, metric: str) -> dict[str, dict[str, float]]:
    """{model: {question number: score}} from a key-facts report's per-question scores."""
    return {
        label: {str(i + 1): value for i, value in enumerate(scores.get(metric, []))}
        for label, scores in (report.get("per_sample") or {}).items()
    }


def study_table(models: dict, step_of: dict, log: list[dict], key_facts: dict, human: dict | None) -> list[dict]:
    """One row per model: step, losses at that step, key-fact scores (mean and 95% CI), human grades."""
    from finch.evaluate.report import mean_ci

    at_step = {r["step"]: r for r in log}
    rows = []
    for label in models:
        step = step_of[label]
        fractions = key_facts["per_sample"][label].get("key_fact_fraction", [])
        mean, ci = mean_ci(fractions) if fractions else (None, None)
        row = {
            "model": label,
            "step": step,
            "train_loss": at_step.get(step, {}).get("loss"),
            "eval_loss": at_step.get(step, {}).get("eval_loss"),
            "all_key_facts": key_facts["results"][label]["all_key_facts"],
            "key_fact_fraction": mean,
            "key_fact_ci": ci,
        }
        if human:
            grades = human["per_sample"][label]["mean_grade"]
            row["mean_grade"], row["grade_ci"] = mean_ci(grades) if grades else (None, None)
            row["grades"] = len(grades)
        rows.append(row)
    return rows


def recommend(table: list[dict], graded: bool) -> dict:
    """The checkpoint with the highest mean score (grades when there are, else key facts); among those within the
    best one's confidence interval, the one with the lowest eval loss, then the fewest steps."""
    score, ci = ("mean_grade", "grade_ci") if graded else ("key_fact_fraction", "key_fact_ci")
    tuned = [row for row in table if row["step"] > 0 and row[score] is not None]
    if not tuned:
        return {"model": None, "why": "no checkpoint was scored"}
    top = max(tuned, key=lambda row: row[score])
    close = [row for row in tuned if row[score] >= top[score] - (top[ci] or 0.0)]
    best = min(close, key=lambda row: (row["eval_loss"] if row["eval_loss"] is not None else math.inf, row["step"]))
    base = next(row for row in table if row["step"] == 0)
    why = (
        f"{score} {best[score]:.3f} (best {top[score]:.3f} ± {top[ci] or 0:.3f} at step {top['step']}; base "
        f"{base[score] if base[score] is not None else float('nan'):.3f})"
    )
    if len(close) > 1:
        why += f"; of the {len(close)} checkpoints within that interval, the lowest eval loss"
    return {"model": best["model"], "step": best["step"], "why": why}


def report_markdown(report: dict, graded: bool) -> str:
    columns = ["model", "step", "train_loss", "eval_loss", "all_key_facts", "key_fact_fraction", "key_fact_ci"]
    if graded:
        columns += ["mean_grade", "grade_ci", "grades"]
    lines = ["# finch study iterations", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in report["table"]:
        cells = [_cell(row.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    best = report["recommended"]
    lines += ["", f"**Recommended: {best['model']}** — {best['why']}.", ""]
    lines += [f"- plot: {Path(p).name}" for p in report["plots"]]
    if not graded:
        lines.append(f"- grade {report['sheet']} (0-5 per row), then run the same command with --import GRADED.csv")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
