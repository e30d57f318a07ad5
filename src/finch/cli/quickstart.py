"""`finch quickstart`: the whole job on the built-in model, one stage per capability that has landed."""

from __future__ import annotations

import typer

from finch.config import Config, init_workspace, load_settings
from finch.errors import FinchError
from finch.ui import out

QUESTION = "What does a weather station measure?"


def quickstart(
    model: str = typer.Option(None, help="Model to use (default: the configured model, gemma-3-270m)."),
) -> None:
    """Set up the workspace, check the sample taxonomy, prepare the model, get one answer from it and generate a
    little synthetic data."""
    from finch.inference import GenerationParams, load_backend
    from finch.models.info import model_info
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.taxonomy import check_workspace_taxonomy

    settings = load_settings()
    out.rule("[bold]1. workspace")
    config = Config.model_validate(settings.config.model_dump(include={"model", "teacher"}))
    for path in init_workspace(settings, config):
        out.print(f"created {path}")
    out.print(f"workspace: {settings.locations.data_dir}  config: {settings.locations.config_file}")

    out.rule("[bold]2. taxonomy")
    report = check_workspace_taxonomy()
    for line in report.lines():
        out.print(line, markup=False)
    out.print(report.summary(), markup=False)
    if not report.ok:
        raise FinchError(f"the taxonomy in {settings.path('taxonomy_dir')} has errors; fix them and run again.")

    out.rule("[bold]3. model")
    ref = model or settings.config.model
    resolved = resolve_model(ref, settings.path("models_dir"))
    info = model_info(resolved, prepare_model(resolved))
    out.print(
        f"{info.name}: {info.architecture}, {info.parameters / 1e6:.0f}M parameters, "
        f"context {info.context_length}, chat format {info.chat_format}\n  HF-format directory: {info.path}"
    )

    out.rule("[bold]4. one answer")
    backend = load_backend(ref, settings.path("models_dir"), ctx=1024)
    try:
        [[answer]] = backend.chat(
            [[{"role": "user", "content": QUESTION}]], GenerationParams(temperature=0, max_tokens=48)
        )
    finally:
        backend.close()
    out.print(f"[bold]user:[/] {QUESTION}\n[bold]{info.name} ({backend.name}):[/] ", end="")
    out.print(answer.text.strip() or "(empty)", markup=False)
    out.print(
        "The base model has not been taught anything yet: its answer shows where fine-tuning starts. "
        "Try `finch chat` to talk to it, `finch serve` for an OpenAI-compatible API."
    )

    out.rule("[bold]5. synthetic data")
    dataset = quickstart_data(settings, report.leaves, ref)
    out.print(
        f"A small taste of `finch data generate` ({SAMPLES_PER_LEAF} samples asked per leaf, simple pipeline). "
        f"{settings.config.teacher} is a weak teacher, so few samples pass; a stronger one (--teacher URL) and the "
        f"full pipeline make real training data. See the samples: `finch data show {dataset}`."
    )

    out.rule("[bold]next")
    out.print("Coming in later stages of finch: fine-tuning (finch train), evaluation, and export.")


SAMPLES_PER_LEAF = 2  # keeps the stage to a couple of minutes on 2 cores with the built-in teacher


def quickstart_data(settings, leaves, student: str):
    """Generate a few samples per leaf with the configured teacher; prints the per-leaf, per-stage counts."""
    from finch.cli.data import RichProgress, print_summary, student_token_counter
    from finch.inference import load_backend
    from finch.sdg import GenerateOptions, generate_dataset, load_pipeline

    teacher = settings.config.teacher
    output = settings.path("datasets_dir") / f"quickstart-{teacher.replace('/', '_').replace(':', '_')}"
    options = GenerateOptions(output=output, scale=1, limit_per_leaf=SAMPLES_PER_LEAF)
    count_tokens = student_token_counter(student, settings.path("models_dir"))
    backend = load_backend(teacher, settings.path("models_dir"), ctx=4096)
    progress = RichProgress()
    try:
        report = generate_dataset(leaves, backend, load_pipeline("simple"), options, count_tokens, progress)
    finally:
        progress.progress.stop()
        backend.close()
    print_summary(report)
    return output
