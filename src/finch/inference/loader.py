"""Pick and start the backend for a model reference: llama.cpp for GGUF, transformers for HF dirs and adapters,
HTTP for URLs. `backend` overrides the choice."""

from __future__ import annotations

from pathlib import Path

from finch.errors import UsageError
from finch.inference.base import Backend

BACKENDS = ("auto", "llama-cpp", "transformers", "http")


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def load_backend(
    ref: str,
    models_dir: Path,
    backend: str = "auto",
    adapter: Path | None = None,
    ctx: int = 4096,
    api_key: str | None = None,
    model_name: str | None = None,
    logits_all: bool = False,
    dtype: str | None = None,
    batch_invariant: bool = False,
) -> Backend:
    from finch.models.prepare import ensure_builtin_gguf, prepare_model
    from finch.models.resolve import resolve_model

    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: unknown; choose one of {', '.join(BACKENDS)}.")
    if is_url(ref) or backend == "http":
        if not is_url(ref):
            raise UsageError(f"--backend http needs a URL (http://host:port/v1), got '{ref}'.")
        from finch.inference.http_backend import HttpBackend

        return HttpBackend(ref, model=model_name, api_key=api_key, context_length=ctx)

    model = resolve_model(ref, models_dir)
    if adapter is not None:
        if model.kind == "adapter":
            raise UsageError(f"{ref} already holds an adapter; pass its base model with --model, or drop --adapter.")
        if not (adapter / "adapter_config.json").is_file():
            raise UsageError(f"--adapter {adapter}: no adapter_config.json there.")
    if model.kind == "adapter":
        adapter = model.adapter
    has_gguf = model.kind in ("builtin", "gguf")
    if backend == "auto":
        backend = "llama-cpp" if has_gguf and adapter is None else "transformers"
    if backend == "llama-cpp":
        if adapter is not None:
            raise UsageError("the llama-cpp backend cannot apply a PEFT adapter; use --backend transformers.")
        if not has_gguf:
            raise UsageError(
                f"{ref}: the llama-cpp backend needs a GGUF model; this is an HF model (use transformers)."
            )
        from finch.inference.llama_cpp_backend import LlamaCppBackend

        gguf = ensure_builtin_gguf(model.name, model.gguf) if model.kind == "builtin" else model.gguf
        return LlamaCppBackend(gguf, n_ctx=ctx, logits_all=logits_all, batch_invariant=batch_invariant)
    from finch.inference.transformers_backend import TransformersBackend

    return TransformersBackend(prepare_model(model), adapter=adapter, dtype=dtype)
