"""The one generation interface. Local backends render chat templates themselves; HTTP backends let the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from finch.inference.chat_template import render_chat
from finch.inference.params import Completion, GenerationParams


@dataclass(frozen=True)
class PromptFormat:
    template: str
    bos_token: str
    eos_token: str

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return render_chat(
            self.template,
            messages,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=add_generation_prompt,
        )


@dataclass
class StreamChunk:
    text: str
    finish_reason: str | None = None  # set on the last chunk


@dataclass(frozen=True)
class Abilities:
    """What a backend can do beyond chat, complete and stream, declared by the backend rather than guessed by its
    callers; each one names the method it promises."""

    renders_prompts: bool = False  # prompt_format + tokenize(): continues a prefilled answer, counts prompts exactly
    batch_decoding: bool = False  # chat_stream(): many requests decoded together, each result as it finishes
    choice_probs: bool = False  # next_token_probs(): each choice's probability after a prefix, in one forward pass
    concurrent_requests: bool = False  # several requests in flight at once pay off (a server batches them)


class Backend(Protocol):
    """A model to generate with. Backends are context managers: `with load_backend(...) as backend:` closes it."""

    name: str  # backend kind: llama-cpp | transformers | http
    model_name: str
    context_length: int
    abilities: Abilities

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[list[Completion]]:
        """One list of `params.n` completions per conversation."""

    def complete(self, prompts: list[str], params: GenerationParams, echo: bool = False) -> list[list[Completion]]:
        """echo=True returns the prompt too, with its logprobs when asked (for log-likelihood scoring)."""

    def stream_chat(self, messages: list[dict[str, str]], params: GenerationParams) -> Iterator[StreamChunk]: ...

    def stream_complete(self, prompt: str, params: GenerationParams) -> Iterator[StreamChunk]: ...

    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def chat_prompt_ids(prompt_format: PromptFormat, tokenize, messages: list[dict[str, str]]) -> list[int]:
    """Ids of a rendered chat, as HF's apply_chat_template(tokenize=True) makes them: the template brings the BOS.
    A chat that ends with an assistant message is continued from it (a prefill, as HF's continue_final_message and
    llama.cpp's server do): the answer turn is opened and left open after that text, so the model goes on from it."""
    if messages and messages[-1]["role"] == "assistant":
        return tokenize(prompt_format.render(messages[:-1]) + messages[-1]["content"], add_bos=False)
    return tokenize(prompt_format.render(messages), add_bos=False)
