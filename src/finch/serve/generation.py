"""Generation requests through the continuous batcher, timed into the metrics and written to the request log.

A request with n choices is n sequences decoded side by side (seeds seed, seed+1, … as the one-at-a-time path
seeds them). A streamed request gives each step's new text as a chunk; a client that disconnects cancels its
sequence, which frees the slot at the next step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request

from finch.errors import FinchError
from finch.inference.base import StreamChunk
from finch.inference.params import Completion, GenerationParams
from finch.serve.batching import Busy, ContinuousBatcher, Ticket
from finch.serve.metrics import ServeMetrics
from finch.serve.request_log import RequestLog


@dataclass
class Timing:
    """One request's clock: arrival, first token, end; observed into the metrics once each."""

    metrics: ServeMetrics
    started: float = field(default_factory=time.perf_counter)
    first: float | None = None

    def token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.metrics.first_token.observe(self.first - self.started)

    def done(self, prompt_tokens: int, completion_tokens: int) -> dict:
        end = time.perf_counter()
        self.metrics.latency.observe(end - self.started)
        self.metrics.prompt_tokens.inc(prompt_tokens)
        self.metrics.completion_tokens.inc(completion_tokens)
        first = None if self.first is None else round(self.first - self.started, 4)
        return {"first_token_s": first, "latency_s": round(end - self.started, 4)}


class BatchedGeneration:
    def __init__(self, batcher: ContinuousBatcher, metrics: ServeMetrics, log: RequestLog | None):
        self.batcher, self.metrics, self.log = batcher, metrics, log

    async def _events(self, ticket: Ticket, timing: Timing, request: Request | None):
        """The request's Events until its last; stops early (and cancels) when the client has gone."""
        finished = False
        try:
            while True:
                item = await ticket.events.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise FinchError(f"generation failed: {item}")
                if item.tokens:
                    timing.token()
                yield item
                if item.finish:
                    finished = True
                    return
                if request is not None and await request.is_disconnected():
                    return
        finally:
            if not finished:
                self.batcher.cancel(ticket)
                self.metrics.cancelled.inc()

    async def complete(self, ids: list[int], params: GenerationParams, record: dict) -> list[Completion]:
        timing = Timing(self.metrics)

        async def one(i: int) -> Completion:
            text, finish, tokens = "", "stop", 0
            async for event in self._events(tickets[i], timing, None):
                text, finish, tokens = text + event.text, event.finish or finish, event.tokens
            return Completion(text, "length" if finish == "length" else "stop", len(ids), tokens)

        tickets = []
        try:
            for i in range(params.n):
                seed = None if params.seed is None else params.seed + i
                tickets.append(
                    self.batcher.submit(ids, params.model_copy(update={"seed": seed, "n": 1}), streamed=False)
                )
        except Busy:
            for ticket in tickets:
                self.batcher.cancel(ticket)
            raise
        completions = list(await asyncio.gather(*(one(i) for i in range(params.n))))
        times = timing.done(len(ids), sum(c.completion_tokens for c in completions))
        self._log(
            record,
            [c.text for c in completions],
            [c.finish_reason for c in completions],
            times,
            len(ids),
            sum(c.completion_tokens for c in completions),
        )
        return completions

    def stream(
        self, ids: list[int], params: GenerationParams, request: Request, record: dict
    ) -> AsyncIterator[StreamChunk]:
        """Each step's new text as a chunk. The request is queued now, so a full queue is a 429 before any
        response starts."""
        timing = Timing(self.metrics)
        ticket = self.batcher.submit(ids, params.model_copy(update={"n": 1}))
        return self._chunks(ticket, timing, len(ids), request, record)

    async def _chunks(
        self, ticket: Ticket, timing: Timing, prompt_tokens: int, request: Request, record: dict
    ) -> AsyncIterator[StreamChunk]:
        text, finish, tokens = "", None, 0
        try:
            async for event in self._events(ticket, timing, request):
                text, finish, tokens = text + event.text, event.finish, event.tokens
                reason = None if event.finish is None else "length" if event.finish == "length" else "stop"
                if event.text or reason:
                    yield StreamChunk(event.text, reason)
        finally:
            times = timing.done(prompt_tokens, tokens)
            self._log(record, [text], [finish or "cancelled"], times, prompt_tokens, tokens)

    def _log(self, record: dict, texts, finishes, times: dict, prompt_tokens: int, completion_tokens: int) -> None:
        if self.log is not None:
            self.log.write(
                {
                    **record,
                    "answers": texts,
                    "finish": finishes,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    **times,
                }
            )
