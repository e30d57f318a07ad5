"""A conversation: its messages, saving and loading, and trimming history to fit the model's context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from finch.errors import UsageError
from finch.fileio import atomic_write_text
from finch.inference.base import Backend
from finch.inference.params import GenerationParams


class ChatSession:
    def __init__(self, backend: Backend, params: GenerationParams, system: str | None = None):
        self.backend = backend
        self.params = params
        self.system = system
        self.messages: list[dict[str, str]] = []

    def conversation(self, messages: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + (self.messages if messages is None else messages)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        if self.backend.abilities.renders_prompts:
            return len(self.backend.tokenize(self.backend.prompt_format.render(messages), add_bos=False))
        return sum(len(m["content"]) for m in messages) // 3 + 8 * len(messages)  # HTTP: a cautious estimate

    def fit(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The newest messages whose prompt, plus room for the answer, fits the context; oldest exchanges go first."""
        budget = self.backend.context_length - self.params.max_tokens
        while self.prompt_tokens(self.conversation(messages)) > budget:
            if len(messages) <= 1:
                raise UsageError(
                    f"the message does not fit the context ({self.backend.context_length} tokens, "
                    f"{self.params.max_tokens} kept for the answer); shorten it or lower --max-tokens."
                )
            messages = messages[2:]
        return messages

    def ask(self, text: str) -> Iterator[str]:
        """Stream the answer to `text`; history changes only once an answer exists, so a failure loses nothing."""
        messages = self.fit([*self.messages, {"role": "user", "content": text}])
        answer = ""
        try:
            for chunk in self.backend.stream_chat(self.conversation(messages), self.params):
                answer += chunk.text
                yield chunk.text
        finally:
            if answer:
                self.messages = [*messages, {"role": "assistant", "content": answer.strip()}]

    def new(self) -> None:
        self.messages = []

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps({"system": self.system, "messages": self.messages}, indent=2) + "\n")

    def load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            messages = [{"role": m["role"], "content": m["content"]} for m in data["messages"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{path}: not a saved finch chat ({type(e).__name__}: {e}).") from None
        self.system, self.messages = data.get("system"), messages
