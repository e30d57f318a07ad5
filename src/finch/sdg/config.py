"""The data generation settings: one pydantic model, read from a YAML file and overridden by flags (the CLI makes a
flag of every field)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from finch.stage_config import load_stage_config


class GenerateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    taxonomy: Path | None = Field(None, description="Taxonomy folder; none: the workspace taxonomy.")
    leaves: list[str] = Field(
        default_factory=lambda: ["all"], description="all, changed (git diff against the main branch), or paths."
    )
    pipeline: str = Field(
        "full", description="full (generate, judge, deduplicate), simple (one step, no judge) or a pipeline YAML file."
    )
    teacher: str | None = Field(None, description="Teacher model or OpenAI-compatible URL; none: the configured one.")
    teacher_model: str | None = Field(None, description="Model name to ask a URL teacher for.")
    scale: int = Field(
        5, ge=1, description="Samples per seed example (knowledge: at least; every passage is asked about)."
    )
    workers: int = Field(8, ge=1, description="Concurrent requests to a URL teacher.")
    output: Path | None = Field(None, description="Dataset folder; rerunning into it resumes. none: by the settings.")
    seed: int = Field(42, description="Seed for sampling and the held-out split.")
    replay: Path | None = Field(None, description="Messages-format JSONL to mix in against forgetting.")
    replay_ratio: float = Field(0.0, ge=0, description="Replay rows per generated row (needs replay).")
    student: str | None = Field(None, description="Model whose tokenizer sizes the chunks; none: the configured model.")
    chunk_tokens: int = Field(400, ge=32, description="Knowledge chunk size, in student tokens.")
    ctx: int = Field(4096, ge=512, description="Context length of a local teacher.")
    limit_per_leaf: int | None = Field(
        None, ge=1, description="At most this many samples (and benchmark questions) per leaf."
    )

    @field_validator("replay_ratio")
    @classmethod
    def _needs_replay(cls, ratio: float, info: ValidationInfo) -> float:
        if ratio > 0 and info.data.get("replay") is None:
            raise ValueError("needs replay, the messages-format JSONL to mix rows from")
        return ratio


def load_generate_config(config_file: Path | None, overrides: dict) -> GenerateConfig:
    """A YAML file of settings (if given) with the flags that were set on top."""
    return load_stage_config(GenerateConfig, config_file, overrides, "generate")
