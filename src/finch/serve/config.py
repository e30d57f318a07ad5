"""The serving settings: one pydantic model, read from a YAML file and overridden by flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Model reference; none: the configured model.")
    adapter: Path | None = Field(None, description="A LoRA adapter directory to apply (transformers or vLLM).")
    host: str = Field("127.0.0.1", description="Address to bind; the default keeps the server on this machine.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")
    backend: Literal["auto", "llama-cpp", "transformers", "vllm"] = Field(
        "auto", description="auto: llama-cpp for a GGUF, transformers for HF folders and adapters."
    )
    api_key: str | None = Field(None, description="Require 'Authorization: Bearer KEY' on /v1 (or set FINCH_API_KEY).")
    ctx: int = Field(4096, ge=16, description="Context length in tokens.")
    parallel: int = Field(
        8,
        ge=1,
        le=64,
        description="llama-cpp: requests decoded together, each in a slot of ctx tokens (more slots "
        "cost KV-cache memory); 1 answers one at a time.",
    )
    batch_invariant: bool = Field(
        True,
        description="llama-cpp: a greedy answer is the same whatever is decoded beside it (llama.cpp's kernels for "
        "several rows round differently); off: prompts evaluate about 30% faster on a CPU.",
    )
    max_queue: int = Field(32, ge=1, description="Requests that may wait for a slot; more get HTTP 429.")
    log_requests: Path | None = Field(
        None,
        description="Append every request (prompt, answer, timings; never the API key) to this JSONL file, "
        "rotated at 50 MB.",
    )
    logprobs: bool = Field(
        False,
        description="llama-cpp: keep logits for every token so requests may ask for logprobs (lm-eval scoring needs "
        "this); costs ctx x vocab x 4 bytes of memory.",
    )
