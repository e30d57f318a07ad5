"""`finch chat`."""

from __future__ import annotations

import sys

import typer

from finch.cli.ui import out
from finch.config import load_settings
from finch.errors import UsageError


def chat(
    model: str = typer.Option(None, "--model", "-m", help="Model reference (default: the configured model)."),
    endpoint: str = typer.Option(None, help="An OpenAI-compatible server URL instead of a local model."),
    question: str = typer.Option(None, "--question", "-q", help="Answer this one question and exit."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (0 = greedy)."),
    system: str = typer.Option(None, help="System prompt."),
    max_tokens: int = typer.Option(512, help="Longest answer, in tokens."),
    backend: str = typer.Option("auto", help="auto, llama-cpp, transformers or http."),
    api_key: str = typer.Option(None, envvar="FINCH_API_KEY", help="API key for --endpoint."),
    ctx: int = typer.Option(4096, help="Context length for a local model; history is trimmed to fit."),
    seed: int = typer.Option(None, help="Sampling seed, for repeatable answers."),
) -> None:
    """Chat with a model: a REPL with streamed answers, or one answer with -q."""
    from finch.chat.session import ChatSession
    from finch.cli.chat_repl import repl
    from finch.inference.loader import load_backend
    from finch.inference.params import GenerationParams

    if model and endpoint:
        raise UsageError("--model and --endpoint: pass one of them.")
    settings = load_settings()
    ref = endpoint or model or settings.config.model
    loaded = load_backend(ref, settings.path("models_dir"), backend=backend, ctx=ctx, api_key=api_key, model_name=model)
    try:
        params = GenerationParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    except ValueError as e:
        raise UsageError(f"--temperature/--max-tokens: {e.errors()[0]['msg']}.") from None
    session = ChatSession(loaded, params, system=system)
    try:
        if question is not None:
            for piece in session.ask(question):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return
        repl(session, out)
    finally:
        loaded.close()
