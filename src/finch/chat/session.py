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

    def conversation(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        if hasattr(self.backend, "prompt_format"):
            return len(self.backend.tokenize(self.backend.prompt_format.render(messages), add_bos=False))
        return sum(len(m["content"]) for m in messages) // 3 + 8 * len(messages)  # HTTP: a cautious estimate

    def trim(self) -> int:
        """Drop the oldest exchanges until the prompt plus the answer fit the context; returns messages dropped."""
        budget = self.backend.context_length - self.params.max_tokens
        dropped = 0
        while self.prompt_tokens(self.conversation()) > budget:
            if len(self.messages) <= 1:
                raise UsageError(
                    f"the message does not fit the context ({self.backend.context_length} tokens, "
                    f"{self.params.max_tokens} kept for the answer); shorten it or lower --max-tokens."
                )
            self.messages = self.messages[2:] if len(self.messages) > 2 else self.messages[1:]
            dropped += 2
        return dropped

    def ask(self, text: str) -> Iterator[str]:
        """Stream the answer to `text`; the exchange joins the history once the answer is complete."""
        self.messages.append({"role": "user", "content": text})
        try:
            self.trim()
        except UsageError:
            self.messages.pop()
            raise
        answer = ""
        try:
            for chunk in self.backend.stream_chat(self.conversation(), self.params):
                answer += chunk.text
                yield chunk.text
        finally:
            if answer:
                self.messages.append({"role": "assistant", "content": answer.strip()})
            else:
                self.messages.pop()

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
