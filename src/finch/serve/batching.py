"""Concurrent requests decoded together: one thread owns a llama.cpp BatchDecoder, and every request in flight has a
slot (finch.inference.llama_batch). A request's tokens reach its handler as they are decoded; a client that goes
away frees its slot at the next step.

The event loop never blocks on the model: submit() queues a request and returns an asyncio.Queue that the decode
thread fills (through call_soon_threadsafe) with the request's Events, the last one with its finish reason.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from finch.inference.llama_batch import BatchDecoder, Event
from finch.inference.params import GenerationParams


class Busy(Exception):
    """Every slot is busy and the queue is full: the client should retry (HTTP 429)."""


@dataclass
class Ticket:
    number: int
    events: asyncio.Queue  # Event, or the exception that stopped the decoder


class ContinuousBatcher:
    def __init__(self, llm, slots: int, context_length: int, max_queue: int, n_threads: int | None = None):
        self.decoder = BatchDecoder(llm, slots, context_length, n_threads)
        self.slots, self.max_queue = slots, max_queue
        self.pending: deque = deque()
        self.cancelled: set[int] = set()
        self.waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="finch-batch", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self.pending)

    @property
    def active(self) -> int:
        """Requests holding a slot: taken from the queue and not finished."""
        return max(0, min(self.slots, len(self.waiting) - len(self.pending)))

    def submit(self, ids: list[int], params: GenerationParams) -> Ticket:
        """Queue a request (its prompt ids must fit a slot's context with its max_tokens)."""
        with self._lock:
            if len(self.waiting) >= self.slots + self.max_queue:
                raise Busy
            number = self._next
            self._next += 1
            queue: asyncio.Queue = asyncio.Queue()
            self.waiting[number] = (asyncio.get_running_loop(), queue)
            self.pending.append((number, ids, params))
        self._wake.set()
        return Ticket(number, queue)

    def cancel(self, ticket: Ticket) -> None:
        """Stop a request at the next step (or before it starts); its slot takes the next request."""
        with self._lock:
            if ticket.number in self.waiting:
                self.cancelled.add(ticket.number)

    def _deliver(self, number: int, item: Event | BaseException, last: bool) -> None:
        with self._lock:
            loop, queue = self.waiting[number] if not last else self.waiting.pop(number)
            if last:
                self.cancelled.discard(number)
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            try:
                for event in self.decoder.steps(self.pending, self.cancelled):
                    self._deliver(event.ticket, event, last=event.finish is not None)
            except Exception as e:  # a failed decode fails every request in flight, and the server goes on
                self.pending.clear()
                for number in list(self.waiting):
                    self._deliver(number, e, last=True)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.decoder.close()
