"""`finch explain` settings: one pydantic model (the CLI makes a flag of every field)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ExplainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="GGUF, HF folder, LoRA/QLoRA run folder or built-in name; none: the configured model."
    )
    compare: str | None = Field(None, description="A base model: trace the same answer through it and map the change.")
    leaf: Path | None = Field(
        None,
        description="A knowledge leaf (folder or qna.yaml): explain its held-out questions with their passages "
        "and score grounding.",
    )
    system: str | None = Field(None, description="A system prompt before the question.")
    max_tokens: int = Field(48, ge=1, le=1024, description="Longest answer to generate and explain.")
    layer_plots: bool = Field(
        True,
        description="A PNG per layer with every head's map (seconds each for a long prompt); the overview, "
        "rollout and attribution plots are always written.",
    )
    output: Path | None = Field(None, description="Folder for the plots, page and data; none: evals/explain-<time>.")
