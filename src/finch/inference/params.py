"""What every generation call takes and returns, whatever the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(1, ge=1, le=16)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    logprobs: int | None = Field(None, ge=0, le=20)  # top alternatives per token; 0 = only the chosen token's


@dataclass
class TokenLogprob:
    token: str
    logprob: float | None  # None where the model gave none (the first token of an echoed prompt)
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut text at the earliest stop string; True when one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)
