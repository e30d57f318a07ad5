"""Concurrent requests decoded together: one thread owns a llama.cpp BatchDecoder, and every request in flight has a
slot (finch.inference.llama_batch). A request's tokens reach its handler as they are decoded; a client that goes
away frees its slot at the next step.

The event loop never blocks on the model: submit() queues a request and returns an asyncio.Queue that the decode
thread fills (through call_soon_threadsafe) with the request's Events, the last one with its finish reason.

On 2 cores the event loop's work competes with llama.cpp's threads, so it is woken once per decoding step for all
requests, and a request that is not streamed gets only two events: its first token (for the time-to-first-token
metric) and its whole text at the end.
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


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    streamed: bool
    held: str = ""  # text of a non-streamed request's events not delivered yet
    started: bool = False  # its first token has been delivered


class ContinuousBatcher:
    def __init__(self, llm, slots: int, context_length: int, max_queue: int, n_threads: int | None = None):
        self.decoder = BatchDecoder(llm, slots, context_length, n_threads)
        self.slots, self.max_queue = slots, max_queue
        self.pending: deque = deque()
        self.cancelled: set[int] = set()
        self.waiting: dict[int, _Waiter] = {}
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

    def submit(self, ids: list[int], params: GenerationParams, streamed: bool = True) -> Ticket:
        """Queue a request (its prompt ids must fit a slot's context with its max_tokens). Not streamed: its events
        are the first token's and the last, which carries the rest of the text."""
        with self._lock:
            if len(self.waiting) >= self.slots + self.max_queue:
                raise Busy
            number = self._next
            self._next += 1
            queue: asyncio.Queue = asyncio.Queue()
            self.waiting[number] = _Waiter(asyncio.get_running_loop(), queue, streamed)
            self.pending.append((number, ids, params))
        self._wake.set()
        return Ticket(number, queue)

    def cancel(self, ticket: Ticket) -> None:
        """Stop a request at the next step (or before it starts); its slot takes the next request."""
        with self._lock:
            if ticket.number in self.waiting:
                self.cancelled.add(ticket.number)

    def _deliver(self, items: list[tuple[int, Event | BaseException]]) -> None:
        """Hand one step's events to their handlers: one wake-up per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        with self._lock:
            for number, item in items:
                last = not isinstance(item, Event) or item.finish is not None
                waiter = self.waiting.pop(number) if last else self.waiting[number]
                if last:
                    self.cancelled.discard(number)
                if isinstance(item, Event) and not waiter.streamed:
                    if not last and waiter.started:
                        waiter.held += item.text
                        continue
                    item = Event(item.ticket, waiter.held + item.text, item.finish, item.tokens)
                    waiter.held, waiter.started = "", waiter.started or item.tokens > 0
                by_loop.setdefault(waiter.loop, []).append((waiter.queue, item))
        for loop, puts in by_loop.items():
            loop.call_soon_threadsafe(_put_all, puts)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            try:
                for step in self.decoder.steps(self.pending, self.cancelled):
                    self._deliver([(event.ticket, event) for event in step])
            except Exception as e:  # a failed decode fails every request in flight, and the server goes on
                self.pending.clear()
                self._deliver([(number, e) for number in list(self.waiting)])

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.decoder.close()


def _put_all(puts: list[tuple[asyncio.Queue, object]]) -> None:
    for queue, item in puts:
        queue.put_nowait(item)
