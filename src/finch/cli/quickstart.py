"""`finch quickstart`: the whole LAB loop on the built-in models, offline: taxonomy → synthetic data from the built-in
teacher → LoRA training on it → base vs tuned on held-out seed questions and on the teacher's multiple-choice questions
→ a q4_k_m GGUF asked one of them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from finch.cli.ui import err, out
from finch.config import Config, init_workspace, load_settings
from finch.errors import FinchError
from finch.fileio import read_jsonl

# Synthetic samples asked per seed example, for the skills: 18 and 21 on the sample's two skill leaves. A knowledge leaf
# is asked about every passage of its document whatever the scale (102 pairs from the sample's 1,800-word manual).
QUICK_SCALE = 3


def quickstart(
    model: str = typer.Option(None, help="Student to fine-tune (default: the configured model, gemma-3-270m)."),
    teacher: str = typer.Option(
        None, help="Teacher that writes and judges the data (default: the configured teacher, the built-in one)."
    ),
    scale: int = typer.Option(
        QUICK_SCALE, min=1, help="Synthetic samples per seed example: fewer is quicker and teaches less."
    ),
) -> None:
    """The whole loop on the built-in models: workspace, taxonomy check, synthetic data from the built-in teacher,
    LoRA training on it, base vs tuned on held-out seed questions and on the teacher's multiple-choice questions, and
    a q4_k_m GGUF export asked one of them."""
    from finch.taxonomy import check_taxonomy

    settings = load_settings()
    out.rule("[bold]1. workspace")
    config = Config.model_validate(settings.config.model_dump(include={"model", "teacher"}))
    for path in init_workspace(settings, config):
        out.print(f"created {path}")
    out.print(f"workspace: {settings.locations.data_dir}  config: {settings.locations.config_file}")

    out.rule("[bold]2. taxonomy")
    report = check_taxonomy([settings.path("taxonomy_dir")], documents_cache=settings.locations.cache_dir / "documents")
    for line in report.lines():
        out.print(line, markup=False)
    out.print(report.summary(), markup=False)
    if not report.ok:
        raise FinchError(f"the taxonomy in {settings.path('taxonomy_dir')} has errors; fix them and run again.")

    student, teacher = model or settings.config.model, teacher or settings.config.teacher
    out.rule("[bold]3. models")
    show_models(student, teacher, settings)

    out.rule("[bold]4. synthetic data")
    dataset = quickstart_data(settings, report.leaves, teacher, student, scale)

    out.rule("[bold]5. training")
    run_dir = quick_train(dataset, student, settings)

    out.rule("[bold]6. base vs tuned")
    quick_evaluate(student, run_dir, dataset, settings)

    out.rule("[bold]7. export for llama.cpp and Ollama")
    gguf = quick_export(run_dir, dataset, settings)

    out.rule("[bold]next")
    out.print(
        f"The run directory {run_dir} and the export {gguf} are model references: `finch chat --model {gguf}`. "
        f"The same loop on your own taxonomy: `finch data generate --pipeline full`, `finch train --data DATASET`, "
        f"`finch evaluate --model RUN --base {student} --benchmark key_facts`."
    )


def show_models(student: str, teacher: str, settings) -> None:
    """Prepare both models (once) and say what they are."""
    from finch.inference.loader import is_url
    from finch.models.info import gguf_model_info, model_info
    from finch.models.prepare import ready_model
    from finch.models.resolve import resolve_model

    models_dir = settings.path("models_dir")
    for role, ref in (("student", student), ("teacher", teacher)):
        if is_url(ref):
            out.print(f"{role}: {ref}")
            continue
        resolved = resolve_model(ref, models_dir)
        path = ready_model(resolved)
        info = gguf_model_info(resolved, path) if path.suffix == ".gguf" else model_info(resolved, path)
        out.print(f"{role}: {info.name}, {info.architecture}, {info.parameters / 1e6:.0f}M parameters ({info.path})")


def quickstart_data(settings, leaves, teacher: str, student: str, scale: int) -> Path:
    """Synthetic data for every leaf from the teacher with the full pipeline (generate, judge, deduplicate); a rerun
    resumes. Prints the per-leaf, per-stage counts."""
    from finch.cli.views import RichProgress, print_summary
    from finch.inference import load_backend
    from finch.sdg import GenerateOptions, generate_dataset, load_pipeline
    from finch.sdg.run import student_token_counter

    output = settings.path("datasets_dir") / f"quickstart-{teacher.replace('/', '_').replace(':', '_')}-x{scale}"
    options = GenerateOptions(output=output, scale=scale)
    out.print(
        f"{teacher} writes {scale} samples per seed example and judges them (the full pipeline); every 5th "
        "seed example of a leaf is held out: never shown to the teacher, never trained on."
    )
    count_tokens = student_token_counter(student, settings.path("models_dir"))
    progress = RichProgress()
    try:
        with load_backend(teacher, settings.path("models_dir"), ctx=4096) as backend:
            report = generate_dataset(leaves, backend, load_pipeline("full"), options, count_tokens, progress)
    finally:
        progress.progress.stop()
    print_summary(report)
    out.print(f"See the samples: `finch data show {output}`.")
    return output


def quick_train(dataset: Path, student: str, settings) -> Path:
    """LoRA on the generated data with finch train's defaults, then one held-out question before and after."""
    from finch.cli.views import TrainProgress
    from finch.train import TrainConfig
    from finch.train.run_dir import resolved_config
    from finch.train.runs import start_run

    config = TrainConfig(data=dataset, model=student, output=settings.path("runs_dir") / dataset.name)
    if (config.output / "run.yaml").exists():
        out.print(f"{config.output} holds the last quickstart's run; training again in a fresh folder.")
        config.output = config.output.with_name(f"{config.output.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    progress = TrainProgress()
    try:
        result = start_run(
            config,
            settings.path("models_dir"),
            settings.path("runs_dir"),
            student,
            on_step=progress.update,
            on_message=lambda message: err.print(message, markup=False),
        )
    finally:
        progress.stop()
    config = resolved_config(result.run_dir)  # with what start_run chose, the learning rate by model size
    out.print(
        f"trained {result.steps} steps ({config.epochs:g} epochs, lr {config.lr:g}, LoRA rank {config.lora_rank}): "
        f"loss {result.log[0]['loss']:.3f} -> {result.train_loss:.3f}, {result.tokens_per_s:.0f} tokens/s; "
        f"run directory {result.run_dir}"
    )
    return result.run_dir


def quick_evaluate(student: str, run_dir: Path, dataset: Path, settings) -> None:
    """Base vs tuned on the held-out seed questions: per leaf, how many answers hold every key fact of the reference
    (and, for a JSON skill, are a JSON object with its fields); then each question with both answers."""
    from finch.evaluate.branch import held_out_base_vs_tuned

    rows = read_jsonl(dataset / "test.jsonl")
    out.print(f"{len(rows)} held-out seed questions, answered greedily by the base model and by the tuned one ...")
    report = held_out_base_vs_tuned(student, str(run_dir), rows, settings.path("models_dir"))
    (run_dir / "quickstart-eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = Table(title="held-out questions answered right (base -> tuned)", title_justify="left")
    for column in ("leaf", "questions", "all key facts", "JSON with the right fields"):
        table.add_column(column, justify="left" if column == "leaf" else "right")
    for leaf in report["leaves"]:
        facts, checked = leaf["with_facts"], leaf["json_checked"]
        table.add_row(
            escape(leaf["leaf"].rsplit("->", 1)[-1]),  # the leaf's own name: the whole path does not fit the column
            str(leaf["questions"]),
            f"{leaf['all_held']['base']}/{facts} -> {leaf['all_held']['tuned']}/{facts}" if facts else "-",
            f"{leaf['json_fields']['base']}/{checked} -> {leaf['json_fields']['tuned']}/{checked}" if checked else "-",
        )
    out.print(table)
    for row in report["questions"]:
        out.print(f"[bold]Q:[/] {escape(_one_line(row['question']))}")
        out.print(f"  [dim]reference:[/] {escape(_one_line(row['reference']))}")
        if row["facts"]:
            out.print(f"  [dim]key facts:[/] {escape(', '.join(row['facts']))}")
        for label in ("base", "tuned"):
            answer = row["answers"][label]
            mark = {True: "[green]right[/]", False: "[red]wrong[/]", None: ""}[_right(answer)]
            out.print(f"  [bold]{label}:[/] {escape(_one_line(answer['answer']))} {mark}")
    out.print(
        f"A question counts as right when the answer holds every key fact of the reference (numbers with units, "
        f"dates, names: extracted from it, no model involved) and, for JSON answers, parses with the same fields. "
        f"Details: {run_dir / 'quickstart-eval.json'}."
    )
    if read_jsonl(dataset / "knowledge_mcq.jsonl"):
        quick_mcq(student, run_dir, dataset, settings)


def quick_mcq(student: str, run_dir: Path, dataset: Path, settings) -> None:
    """mmlu_branch: the teacher's multiple-choice questions about each document (one per chunk, the key confirmed by
    the teacher), base vs tuned by log-likelihood, each model in the form it does better in."""
    from finch.evaluate.run import evaluate

    output = run_dir / "mmlu_branch"
    out.print("The teacher's multiple-choice questions about the documents, scored by log-likelihood (mmlu_branch) ...")
    evaluate({"base": student, "tuned": str(run_dir)}, "mmlu_branch", dataset, output, settings.path("models_dir"))
    report = json.loads((output / "report.json").read_text())
    forms = {label: {"text": "choice text", "letters": "letter"}[form] for label, form in report["forms"].items()}
    for leaf in report["leaves"]:
        n = leaf["questions"]
        right = {label: round(leaf[label] * n) for label in ("base", "tuned")}
        out.print(
            f"  {escape(leaf['leaf'].rsplit('->', 1)[-1])}: {right['base']}/{n} -> {right['tuned']}/{n} right "
            f"({leaf['verdict']}; base by {forms['base']}, tuned by {forms['tuned']})"
        )
    out.print(
        f"Details: {output / 'report.md'}; `finch evaluate --model {run_dir} --base {student} --benchmark mmlu_branch "
        f"--data {dataset}` reruns it."
    )


def _right(answer: dict) -> bool | None:
    checks = [c for c in (answer["all_held"], answer["json_fields"]) if c is not None]
    return all(checks) if checks else None


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quick_export(run_dir: Path, dataset: Path, settings) -> Path:
    """The run as a q4_k_m GGUF with its Ollama Modelfile, and the first held-out knowledge question asked of it via
    llama.cpp. The built-in base came from a Q4_K_M file, so a plain re-quantization would round the run's changes
    back onto the base's grid (finch.export.quantize); the export says which tensors it wrote finer to keep them."""
    from finch.cli.common import human_bytes
    from finch.evaluate.key_facts import score_answer
    from finch.export import export_model
    from finch.inference import GenerationParams, load_backend
    from finch.models.resolve import resolve_model

    models_dir = settings.path("models_dir")
    result = export_model(resolve_model(str(run_dir), models_dir), "gguf", "q4_k_m")
    out.print(f"wrote {result.path} ({human_bytes(result.path.stat().st_size)}) and its Modelfile")
    for note in result.notes:
        out.print(note, markup=False)
    rows = read_jsonl(dataset / "test.jsonl")
    row = next((r for r in rows if r["metadata"]["kind"] == "knowledge"), rows[0])
    question, reference = row["messages"][0]["content"], row["messages"][1]["content"]
    with load_backend(str(result.path), models_dir, ctx=1024) as backend:
        [[answer]] = backend.chat(
            [[{"role": "user", "content": question}]], GenerationParams(temperature=0, max_tokens=128)
        )
    scored = score_answer(question, reference, answer.text)
    out.print(f"[bold]user:[/] {escape(question)}\n[bold]q4_k_m GGUF (llama-cpp):[/] ", end="")
    out.print(f"{answer.text.strip() or '(empty)'}  [finish: {answer.finish_reason}]", markup=False)
    held = [fact for fact, ok in zip(scored.facts, scored.held) if ok]
    out.print(f"key facts held: {len(held)}/{len(scored.facts)} ({', '.join(held) or 'none'})", markup=False)
    return result.path
