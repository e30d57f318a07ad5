"""`finch explain`: a view over finch.explain."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import out
from finch.config import load_settings
from finch.errors import SettingError
from finch.explain.config import ExplainConfig


def explain(
    prompt: str = typer.Argument(None, help="The question to answer and explain (or use --leaf)."),
    config_file: Path = typer.Option(None, "--config", help="A YAML file with any of these settings; flags win."),
    **settings,
) -> None:
    """Where a model looked while it answered: attention maps per layer and head, attention rollout and gradient ×
    input attribution of the answer to the prompt, as PNGs and one HTML page. Works on GGUF (dequantised), LoRA
    and QLoRA runs and HF models; --compare shows what fine-tuning changed; --leaf scores how well a knowledge
    leaf's held-out answers are grounded in their passage."""
    from finch.explain.session import run_explain
    from finch.stage_config import load_stage_config

    overrides = config_values(ExplainConfig, settings)
    try:
        config = load_stage_config(ExplainConfig, config_file, overrides, "explain")
    except SettingError as e:
        raise as_flags(e, set(overrides), config_file=config_file) from None
    workspace = load_settings()
    config = config.model_copy(update={"model": config.model or workspace.config.model})
    output = config.output or workspace.path("evals_dir") / f"explain-{datetime.now():%Y%m%d-%H%M%S}"
    done = run_explain(config, prompt, workspace.path("models_dir"), output)
    for item in done:
        show(item)
    if config.leaf:
        show_grounding(done)
    out.print(
        f"open [bold]{escape(str(done[0].folder / 'explain.html'))}[/]" + (" (one per question)" if config.leaf else "")
    )


explain = with_config_options(explain, ExplainConfig)


def show(item) -> None:
    e = item.explanation
    out.print(f"[bold]Q:[/] {escape(item.question[-300:])}")
    out.print(f"[bold]A ({escape(e.model)}):[/] {escape(e.answer)}")
    if e.compare:
        out.print(f"[bold]{escape(e.compare)}'s own answer:[/] {escape(e.own_answers['base'])}")
    agreement = e.gguf_agreement
    if agreement and agreement["identical"]:
        out.print(f"the dequantised weights give the GGUF's greedy answer, all {agreement['tokens']} tokens")
    elif agreement:
        gap = agreement["gap_nats"]
        out.print(
            f"[yellow]the dequantised weights' greedy answer leaves the GGUF's at token {agreement['first_difference']}"
            + (f" (a near tie: {gap:.3f} nats)" if gap is not None else "")
            + "; the GGUF's answer is explained[/]"
        )
    out.print(f"{e.seconds:.0f} s, peak memory {e.peak_rss_mb:,.0f} MB; wrote {escape(str(item.folder))}")


def show_grounding(done) -> None:
    table = Table(title="grounding of key-fact tokens on the passage that holds them (chance: the passage's share)")
    for column in ("question", "key tokens", "attribution", "rollout", "chance", "base attribution"):
        table.add_column(column)

    def share(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    for item in done:
        g = item.explanation.grounding
        model, base = g["model"], g.get("base")
        table.add_row(
            escape(item.question[:60]),
            escape(" ".join(model.key_tokens)) or "[dim]no key fact in the answer[/]",
            share(model.attribution_share),
            share(model.rollout_share),
            f"{model.chance:.2f}",
            share(base.attribution_share if base else None),
        )
    out.print(table)
