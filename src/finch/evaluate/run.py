"""Run a benchmark (finch.evaluate.benchmarks) on one or more models, e.g. base and tuned, and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from finch.errors import SettingError, UsageError
from finch.evaluate.benchmarks import BUILTIN, EvalRequest, find
from finch.evaluate.config import EvalConfig

if TYPE_CHECKING:
    from finch.config import Settings


def evaluate(
    models: dict[str, str],
    benchmark: str,
    data: Path | None,
    output: Path,
    models_dir: Path,
    limit: int | None = None,
    max_tokens: int | None = None,
    judge: str | None = None,
    judge_max_tokens: int | None = None,
    imports: list[Path] | None = None,
    samples: int = 3,
) -> dict[str, dict[str, float]]:
    """`models` maps a label (base, tuned, ...) to a model reference. Returns {label: {metric: value}}.
    human: writes the grading sheet (`samples` answers per prompt and model), or with `imports` reads it back."""
    from finch.evaluate.report import plot_per_prompt, write_report

    chosen = find(benchmark)
    if chosen.needs_data and data is None and not imports:
        raise UsageError(f"--benchmark {benchmark} needs --data: {chosen.needs_data}")
    if chosen.base_vs_tuned and set(models) != {"base", "tuned"}:
        raise UsageError(f"--benchmark {benchmark} compares a tuned model with its base: pass --model and --base.")
    notes = [f"models: {', '.join(f'{label} = {ref}' for label, ref in models.items())}", f"data: {data}"]
    if any(ref in BUILTIN for ref in models.values()):
        notes.append("gemma-3-270m is a 270M base model: expect low absolute scores; compare base against tuned.")
    request = EvalRequest(
        models=models,
        data=data,
        output=output,
        models_dir=models_dir,
        limit=limit,
        max_tokens=max_tokens or chosen.max_tokens,
        judge=judge,
        judge_max_tokens=judge_max_tokens,
        imports=list(imports or []),
        samples=samples,
        notes=notes,
    )
    result = chosen.run(request)
    write_report(output, benchmark, result.results, request.notes, result.per_sample, result.extra, result.markdown)
    if result.extra.get("per_prompt"):
        per_prompt, metric = result.extra["per_prompt"], result.extra["metric"]
        plot_per_prompt(output / f"{benchmark}-per-prompt.png", benchmark, per_prompt, metric)
    if result.extra.get("leaves"):
        per_leaf = {
            label: {row["leaf"]: row[label] for row in result.extra["leaves"] if row.get(label) is not None}
            for label in result.results
        }
        plot_per_prompt(output / f"{benchmark}-per-leaf.png", benchmark, per_leaf, result.extra["metric"], group="leaf")
    return result.results


def evaluate_config(config: EvalConfig, settings: Settings) -> tuple[dict[str, dict[str, float]], Path]:
    """`finch evaluate` as a library call: the settings' defaults filled from the workspace (the configured model,
    the teacher as judge, the workspace taxonomy for the taxonomy benchmarks); returns the results and the report
    folder."""
    import time

    model = config.model or settings.config.model
    models = {"base": config.base, "tuned": model} if config.base else {Path(model).name or model: model}
    data = config.data
    if data is None and config.benchmark in ("mt_bench_branch", "key_facts"):
        data = settings.path("taxonomy_dir")
    if config.imports and config.output is None:
        raise SettingError("evaluate settings", "imports", "needs output: the folder the grading sheet was written to.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = config.output or settings.path("evals_dir") / f"{config.benchmark}-{stamp}"
    results = evaluate(
        models,
        config.benchmark,
        data,
        output,
        settings.path("models_dir"),
        limit=config.limit,
        max_tokens=config.max_tokens,
        judge=config.judge or settings.config.teacher,  # the judge is the teacher unless told otherwise
        judge_max_tokens=config.judge_max_tokens,
        imports=config.imports,
        samples=config.samples,
    )
    return results, output
