"""`finch serve`."""

from __future__ import annotations

from pathlib import Path

import typer

from finch.cli.ui import err
from finch.config import load_settings

BACKEND_HELP = "auto (llama-cpp for GGUF, transformers for HF dirs and adapters), llama-cpp, transformers or vllm."


def serve(
    model: str = typer.Option(None, "--model", "-m", help="Model reference (default: the configured model)."),
    adapter: Path = typer.Option(None, help="A LoRA adapter directory to apply (transformers or vLLM)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default keeps the server on this machine."),
    port: int = typer.Option(8000, help="Port to listen on."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    api_key: str = typer.Option(None, envvar="FINCH_API_KEY", help="Require 'Authorization: Bearer KEY' on /v1."),
    ctx: int = typer.Option(4096, help="Context length in tokens."),
    max_queue: int = typer.Option(32, help="Requests that may wait; more get HTTP 429."),
    logprobs: bool = typer.Option(
        False,
        help="llama-cpp: keep logits for every token so requests may ask for logprobs (lm-eval scoring needs "
        "this); costs ctx × vocab × 4 bytes of memory.",
    ),
) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/models, /v1/chat/completions, /v1/completions, /health)."""
    settings = load_settings()
    ref = model or settings.config.model
    if backend == "vllm":
        from finch.models.prepare import prepare_model
        from finch.models.resolve import resolve_model
        from finch.serve.vllm import exec_vllm, vllm_command

        resolved = resolve_model(ref, settings.path("models_dir"))
        adapter = adapter or resolved.adapter
        exec_vllm(vllm_command(prepare_model(resolved), host, port, api_key, ctx, adapter, resolved.name))
        return
    import uvicorn

    from finch.inference.loader import load_backend
    from finch.serve.app import create_app

    loaded = load_backend(
        ref, settings.path("models_dir"), backend=backend, adapter=adapter, ctx=ctx, logits_all=logprobs
    )
    app = create_app(loaded, api_key=api_key, max_queue=max_queue)
    err.print(
        f"serving {loaded.model_name} ({loaded.name}) on http://{host}:{port}/v1"
        + (" (API key required)" if api_key else "")
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
