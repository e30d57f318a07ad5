"""`finch plan train`: a view over finch.plan."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import out
from finch.config import load_settings
from finch.errors import SettingError
from finch.plan.train_plan import PlanTrainSettings, TrainPlan

plan_app = typer.Typer(help="Plan a run for this hardware: memory, time and settings.", no_args_is_help=True)


def train_plan_for(config, plan, workspace, count_data: bool = True, probe: bool = True) -> TrainPlan:
    """The plan for a TrainConfig on this workspace's model: config.json alone for a hub id, the prepared weights
    folder otherwise (so --data can be counted)."""
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.plan.train_plan import plan_train

    models_dir = workspace.path("models_dir")
    ref = config.model or workspace.config.model
    resolved = resolve_model(ref, models_dir)
    if resolved.kind == "hub" and not (resolved.path / "config.json").is_file():
        from huggingface_hub import hf_hub_download

        config_json, hf_dir = Path(hf_hub_download(ref, "config.json")), None  # only the config, never the weights
    else:
        hf_dir = prepare_model(resolved)
        config_json = hf_dir / "config.json"
    cache = models_dir.parent / "plan_probe.json" if probe else None
    return plan_train(config, plan, config_json, ref, hf_dir if count_data else None, cache)


def train(config_file: Path = typer.Option(None, "--config", help="train.yaml; flags win."), **settings) -> None:
    """Memory, time and cost of `finch train` with these settings, before it starts; what to change when it does
    not fit. Takes finch train's flags and train.yaml, plus the hardware's."""
    from finch.stage_config import load_stage_config

    overrides = config_values(PlanTrainSettings, settings)
    try:
        config, plan = load_stage_config(PlanTrainSettings, config_file, overrides, "plan").split()
        result = train_plan_for(config, plan, load_settings())
    except SettingError as e:
        raise as_flags(e, set(overrides), {"processes": "--gpus"}, config_file) from None
    show_plan(result)


def show_plan(plan: TrainPlan) -> None:
    s, c, hw = plan.shape, plan.config, plan.hardware
    out.print(
        f"[bold]{plan.model}[/]: {s.params / 1e9:.3g}B parameters ({s.layers} layers, hidden {s.hidden}, vocabulary "
        f"{s.vocab:,}); {c.method} in {plan.dtype} on {hw.device}" + (f" x {hw.gpus}" if hw.gpus > 1 else "")
    )
    table = Table(title="memory per device", show_header=True)
    table.add_column("part")
    table.add_column("GB", justify="right")
    for part, gb in plan.memory.parts.items():
        table.add_row(part, f"{gb:.2f}")
    available = f"{hw.available_gb:.1f} GB available" if hw.available_gb is not None else "available unknown"
    verdict = {True: "[green]fits[/]", False: "[red]does not fit[/]", None: ""}[plan.fits]
    table.add_row("[bold]total", f"[bold]{plan.memory.total_gb:.2f}")
    if plan.memory.paged_gb:
        table.add_row("paged optimiser state (GPU or CPU memory)", f"{plan.memory.paged_gb:.2f}")
    out.print(table)
    out.print(f"{available}: {verdict}")
    for note in plan.memory.notes:
        out.print(f"- {note}", markup=False)
    lora = Table(title=f"LoRA parameters at rank {c.lora_rank}")
    for column in ("targets", "trainable", "share of the model"):
        lora.add_column(column, justify="left" if column == "targets" else "right")
    for row in plan.lora:
        lora.add_row(row["targets"], f"{row['params']:,}", f"{100 * row['share']:.2f}%")
    out.print(lora)
    t = plan.time
    eta = "unknown" if t.seconds is None else _duration(t.seconds)
    per_token = t.flops / max(t.tokens, 1) / 1e9
    out.print(
        f"time: {t.tokens:,} tokens x {per_token:.2f} GFLOP = {t.flops / 1e15:.3g} PFLOP; about {eta}", markup=False
    )
    out.print(f"  ({t.source})", markup=False)
    if plan.cost is not None:
        out.print(f"cost: about {plan.cost:.2f} at the given price per hour")
    for advice in plan.advice:
        mark = "fits" if advice.fits else "still too big"
        out.print(f"advice: {advice.change} -> {advice.total_gb:.2f} GB ({mark})", markup=False)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


with_config_options(train, PlanTrainSettings, {"model": ["-m"], "processes": ["--gpus"]})
plan_app.command("train")(train)
