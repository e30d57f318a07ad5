"""`finch serve`."""

from __future__ import annotations

from pathlib import Path

import typer

from finch.cli.options import as_flags, config_values, with_config_options
from finch.cli.ui import err
from finch.config import load_settings
from finch.serve.config import ServeConfig


def serve(
    config_file: Path = typer.Option(None, "--config", help="A YAML file with any of these settings; flags win."),
    **settings,
) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/models, /v1/chat/completions, /v1/completions, /health,
    /metrics for Prometheus); on llama.cpp, --parallel requests are decoded together.
    Every setting is a flag and a key of the --config file."""
    from finch.errors import SettingError
    from finch.stage_config import load_stage_config

    overrides = config_values(ServeConfig, settings)
    try:
        config = load_stage_config(ServeConfig, config_file, overrides, "serve")
    except SettingError as e:
        raise as_flags(e, set(overrides)) from None
    model, adapter, host, port, backend = config.model, config.adapter, config.host, config.port, config.backend
    api_key, ctx, max_queue, logprobs = config.api_key, config.ctx, config.max_queue, config.logprobs
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
        ref,
        settings.path("models_dir"),
        backend=backend,
        adapter=adapter,
        ctx=ctx,
        logits_all=logprobs,
        batch_invariant=config.batch_invariant,
    )
    app = create_app(
        loaded, api_key=api_key, max_queue=max_queue, parallel=config.parallel, request_log=config.log_requests
    )
    err.print(
        f"serving {loaded.model_name} ({loaded.name}) on http://{host}:{port}/v1"
        + (" (API key required)" if api_key else "")
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


with_config_options(serve, ServeConfig, {"model": ["-m"]}, {"api_key": "FINCH_API_KEY"})
