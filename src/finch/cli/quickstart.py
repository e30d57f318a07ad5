"""`finch quickstart`: the whole job on the built-in model, one stage per capability that has landed."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from finch.config import Config, init_workspace, load_settings
from finch.errors import FinchError
from finch.ui import out

QUESTION = "What does a weather station measure?"
QUICK_STEPS = 12  # about two minutes of fp32 LoRA on two CPU cores with the 270M model


def quickstart(
    model: str = typer.Option(None, help="Model to use (default: the configured model, gemma-3-270m)."),
) -> None:
    """The whole job on the built-in model: workspace, taxonomy check, model, one answer, a little synthetic data, a
    first LoRA run, base vs tuned on held-out questions, and a q4_k_m GGUF export asked the same question."""
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

    out.rule("[bold]6. a first training run")
    run_dir = quick_train(report, ref, settings)

    out.rule("[bold]7. base vs tuned")
    quick_evaluate(ref, run_dir, settings)

    out.rule("[bold]8. export for llama.cpp and Ollama")
    gguf = quick_export(run_dir, report, settings)

    out.rule("[bold]next")
    out.print(
        f"The run directory {run_dir} and the export {gguf} are model references: `finch chat --model {gguf}`. "
        "Next: `finch data generate --teacher URL` with a strong teacher for real training data, `finch train` on "
        "it, and `finch evaluate` against the base."
    )


def quick_evaluate(ref: str, run_dir: Path, settings) -> None:
    """Base vs tuned on the seed questions the run held out, per leaf, by ROUGE-L against the taxonomy's answers."""
    import json

    from finch.cli.evaluate import print_verdicts
    from finch.evaluate.branch import quick_base_vs_tuned

    test = settings.path("datasets_dir") / "quickstart-seeds" / "test.jsonl"
    rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines() if line.strip()]
    verdicts = quick_base_vs_tuned(ref, str(run_dir), rows, settings.path("models_dir"))
    print_verdicts(verdicts, "ROUGE-L")
    out.print(
        f"{len(rows)} seed questions the run never trained on. {QUICK_STEPS} steps on a few examples mostly teach the "
        "answer format, not new facts; real runs train on synthetic data (`finch data generate`) and are judged with "
        f"`finch evaluate --model {run_dir} --base {ref} --benchmark mt_bench_branch` and friends."
    )


def quick_export(run_dir: Path, report, settings) -> Path:
    """The run as a q4_k_m GGUF with its Ollama Modelfile, and the first seed question asked of it via llama.cpp.

    The built-in base came from a Q4_K_M file, so a plain re-quantization would round the short run's changes back
    onto the base's grid (finch.export.quantize); the export says which tensors it wrote finer to keep them.
    """
    from finch.cli.common import human_bytes
    from finch.export import export_model
    from finch.inference import GenerationParams, load_backend
    from finch.models.resolve import resolve_model
    from finch.train.seed_data import seed_rows

    models_dir = settings.path("models_dir")
    result = export_model(resolve_model(str(run_dir), models_dir), "gguf", "q4_k_m")
    out.print(f"wrote {result.path} ({human_bytes(result.path.stat().st_size)}) and its Modelfile")
    for note in result.notes:
        out.print(note, markup=False)
    question = seed_rows(report)[0]["messages"][:1]
    backend = load_backend(str(result.path), models_dir, ctx=1024)
    try:
        [[answer]] = backend.chat([question], GenerationParams(temperature=0, max_tokens=64))
    finally:
        backend.close()
    out.print(f"[bold]user:[/] {question[0]['content']}\n[bold]q4_k_m GGUF (llama-cpp):[/] ", end="")
    out.print(f"{answer.text.strip() or '(empty)'}  [finish: {answer.finish_reason}]", markup=False)
    return result.path


def quick_train(report, ref: str, settings) -> Path:
    """A few LoRA steps on the taxonomy's own seed examples, then the same question before and after."""
    from finch.cli.train import TrainProgress
    from finch.inference import GenerationParams, load_backend
    from finch.train import TrainConfig
    from finch.train.runs import start_run
    from finch.train.seed_data import seed_rows, split_seed_rows, write_seed_dataset
    from finch.ui import err

    dataset = write_seed_dataset(report, settings.path("datasets_dir") / "quickstart-seeds")
    train_rows, test_rows = split_seed_rows(seed_rows(report))
    first = train_rows[0]["messages"]
    config = TrainConfig(
        data=dataset,
        model=ref,
        max_steps=QUICK_STEPS,
        lr=1e-3,
        batch_size=1,
        max_seq_len=256,
        save_every=0,
        warmup_ratio=0.1,
        output=settings.path("runs_dir") / f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    out.print(
        f"{QUICK_STEPS} LoRA steps on {len(train_rows)} seed question/answer pairs of the taxonomy, {len(test_rows)} "
        "held out for the comparison below (real runs train on synthetic data generated from them)."
    )
    progress = TrainProgress()
    try:
        result = start_run(
            config,
            settings.path("models_dir"),
            settings.path("runs_dir"),
            ref,
            on_step=progress.update,
            on_message=lambda message: err.print(message, markup=False),
        )
    finally:
        progress.stop()
    out.print(
        f"trained {result.steps} steps: loss {result.log[0]['loss']:.3f} -> {result.train_loss:.3f}, "
        f"{result.tokens_per_s:.0f} tokens/s; run directory {result.run_dir}"
    )
    question = [first[0]]
    params = GenerationParams(temperature=0, max_tokens=48)
    for label, model_ref in (("before", ref), ("after", str(result.run_dir))):
        backend = load_backend(model_ref, settings.path("models_dir"), backend="transformers", ctx=1024)
        try:
            [[answer]] = backend.chat([question], params)
        finally:
            backend.close()
        out.print(f"[bold]{label}:[/] ", end="")
        out.print(answer.text.strip() or "(empty)", markup=False)
    out.print(f"[bold]user:[/] {question[0]['content']}\n[bold]taxonomy answer:[/] ", end="")
    out.print(first[1]["content"], markup=False)
    return result.run_dir


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
