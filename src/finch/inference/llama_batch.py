"""Several generations decoded together through one llama.cpp context, so each step runs the weights once for all of
them: on 2 CPU cores a step of 8 tokens costs about 4 times one of a single token.

Continuous batching: a sequence that finishes frees its slot for the next request at once, and a caller may append
requests while results stream out (sdg asks again there for an answer that read as nothing). Every slot has a KV
stream of its own (kv_unified off): with one shared cache every token attends over all sequences' cells, masked,
which measured 15% slower at 8 slots.

Prompts share prefixes: a template and its seed examples, or a document chunk that several calls ask about. The
prefix all of the first requests share is evaluated once into a sequence of its own; and a request that starts in a
slot reuses the longest prefix it shares with any prompt already in the cache (that slot's last one, or another
slot's, copied), evaluating only the rest.

llama-cpp-python's Llama runs one sequence; this uses its low-level API on the model the Llama already loaded.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from finch.errors import FinchError
from finch.inference.params import GenerationParams

TOP_K, MIN_P = 40, 0.05  # llama-cpp-python's create_completion defaults, so both paths sample alike

Request = tuple[int, list[int], GenerationParams]  # (ticket, prompt ids, params)


@dataclass
class Event:
    """What one decoding step did for one request."""

    ticket: int
    text: str  # new text since its last event; a possible stop string's start or half a character is held back
    finish: str | None  # stop | length | cancelled, on a request's last event
    tokens: int  # completion tokens so far


@dataclass
class _Sequence:
    ticket: int
    ids: list[int]
    params: GenerationParams
    sampler: object = None
    produced: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None  # stop | length | cancelled once done
    shown: int = 0  # characters of the text already given out in events


def shared_length(a: list[int], b: list[int]) -> int:
    """Tokens `b` starts with that `a` starts with too, leaving at least b's last token to evaluate."""
    n, limit = 0, min(len(a), len(b) - 1)
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def common_prefix(prompts: list[list[int]]) -> int:
    """Tokens all prompts start with, leaving at least the last token of each to evaluate on its own."""
    shortest = min(len(p) for p in prompts)
    n = 0
    while n < shortest - 1 and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


class BatchDecoder:
    def __init__(self, llm, slots: int, context_length: int, n_threads: int | None = None):
        import llama_cpp

        self.lib, self.llm, self.slots = llama_cpp, llm, slots
        self.prefix_seq = slots  # the shared prompt prefix lives in a sequence of its own
        params = llama_cpp.llama_context_default_params()
        params.n_seq_max = slots + 1
        params.n_ctx = params.n_seq_max * context_length  # split evenly: every stream holds one whole sequence
        params.n_batch = params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = n_threads or os.cpu_count()
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as llama-cpp-python's Llama: same numbers
        params.swa_full = False  # sliding-window layers keep their window only: 1.0 instead of 1.7 GB at 16 slots
        self.ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if not self.ctx:
            raise FinchError("llama.cpp could not create a batched context (out of memory?).")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self.n_batch = params.n_batch
        self.cached: dict[int, list[int]] = {}  # sequence -> the prompt its cache starts with
        self.reused = 0  # prompt tokens copied or kept instead of evaluated, since the decoder was made

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        i = b.n_tokens
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq
        b.n_tokens += 1

    def _evaluate(self, ids: list[int], start: int, seq: int) -> None:
        """Evaluate ids[start:] at their positions into `seq`; logits for the last one only. No piece is a single
        token unless the whole is (see _place)."""
        first = start
        while first < len(ids):
            size = self.n_batch - 1 if len(ids) - first == self.n_batch + 1 else self.n_batch
            self.batch.n_tokens = 0
            for pos in range(first, min(len(ids), first + size)):
                self._add(ids[pos], pos, seq, pos == len(ids) - 1)
            self._decode()
            first += size

    def _decode(self) -> None:
        code = self.lib.llama_decode(self.ctx, self.batch)
        if code != 0:
            raise FinchError(f"llama.cpp could not decode a batch (llama_decode returned {code}).")

    def _sampler(self, params: GenerationParams):
        """llama.cpp's sampler chain for a sampled request; None for a greedy one, which _sample does itself."""
        lib = self.lib
        if params.temperature <= 0:
            return None
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        seed = params.seed if params.seed is not None else 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: a random one
        for sampler in (
            lib.llama_sampler_init_top_k(TOP_K),
            lib.llama_sampler_init_top_p(params.top_p, 1),
            lib.llama_sampler_init_min_p(MIN_P, 1),
            lib.llama_sampler_init_temp(params.temperature),
            lib.llama_sampler_init_dist(seed),
        ):
            lib.llama_sampler_chain_add(chain, sampler)
        return chain

    def stream(self, pending: deque[Request]) -> Iterator[tuple[int, str, str, int]]:
        """(ticket, text, finish reason, completion tokens) for every request, in the order they finish. Requests are
        taken from `pending` whenever a slot is free, so the caller may append more between results."""
        texts: dict[int, str] = {}
        for step in self.steps(pending):
            for event in step:
                texts[event.ticket] = texts.get(event.ticket, "") + event.text
                if event.finish:
                    yield event.ticket, texts.pop(event.ticket), event.finish, event.tokens

    def steps(self, pending: deque[Request], cancelled: set[int] | None = None) -> Iterator[list[Event]]:
        """For each decoding step, an Event per request it gave new text or finished, until `pending` is empty and
        every request has finished. A ticket put in `cancelled` (by another thread) stops at the next step and its
        slot takes the next request; a cancelled request that has not started never takes one."""
        lib = self.lib
        cancelled = cancelled if cancelled is not None else set()
        lib.llama_memory_clear(self.memory, True)
        self.cached.clear()
        if len(pending) > 1:
            prefix = pending[0][1][: common_prefix([ids for _, ids, _ in list(pending)])]
            if len(prefix) >= 2:  # never a prompt piece of one token (see _place)
                self._evaluate(prefix, 0, self.prefix_seq)
                self.cached[self.prefix_seq] = prefix
        active: dict[int, _Sequence] = {}
        try:
            while pending or active:
                step: list[Event] = []
                starting: list[tuple[int, _Sequence, int]] = []  # (slot, sequence, first position to evaluate)
                for slot in range(self.slots):
                    while slot not in active and pending:
                        ticket, ids, params = pending.popleft()
                        if ticket in cancelled:
                            step.append(Event(ticket, "", "cancelled", 0))
                            continue
                        active[slot], start = self._place(slot, ticket, ids, params)
                        starting.append((slot, active[slot], start))
                if starting:
                    self._prefill(starting)
                    step += self._news([seq for _, seq, _ in starting if seq.finish is None])
                for seq in active.values():
                    if seq.finish is None and seq.ticket in cancelled:
                        seq.finish = "cancelled"
                running = [(slot, seq) for slot, seq in active.items() if seq.finish is None]
                if running:
                    self.batch.n_tokens = 0
                    for slot, seq in running:
                        self._add(seq.produced[-1], len(seq.ids) + len(seq.produced) - 1, slot, True)
                    self._decode()
                    for i, (_, seq) in enumerate(running):
                        self._accept(seq, self._sample(seq, i))
                    step += self._news([seq for _, seq in running if seq.finish is None])
                for slot in [slot for slot, seq in active.items() if seq.finish is not None]:
                    seq = active.pop(slot)
                    self._free(seq)
                    step += self._news([seq])
                if step:
                    yield step
        finally:
            for seq in active.values():
                self._free(seq)

    def _news(self, sequences: list[_Sequence]) -> list[Event]:
        events = []
        for seq in sequences:
            text = seq.text.decode("utf-8", errors="ignore")  # a character still missing bytes shows next step
            end = len(text)
            if seq.finish is None:
                held = max((len(s) for s in seq.params.stop if s), default=1) - 1
                end = max(seq.shown, len(text) - held)  # what may yet turn out to start a stop string waits
            if end > seq.shown or seq.finish is not None:
                events.append(Event(seq.ticket, text[seq.shown : end], seq.finish, len(seq.produced)))
                seq.shown = end
        return events

    def _reusable(self, ids: list[int]) -> tuple[int, int]:
        """(sequence, tokens) of the cached prompt sharing the longest prefix with `ids`. A sliding-window layer drops
        the positions that fell out of its window: such a cache can only be continued where it ends, not cut back."""
        best, length = -1, 0
        for seq, cached in self.cached.items():
            n = shared_length(cached, ids)
            whole = self.lib.llama_memory_seq_pos_min(self.memory, seq) == 0
            if n > length and (whole or n == self.lib.llama_memory_seq_pos_max(self.memory, seq) + 1):
                best, length = seq, n
        return best, length

    def _place(self, slot: int, ticket: int, ids: list[int], params: GenerationParams) -> tuple[_Sequence, int]:
        """Put a request in a free slot, keeping (or copying from another sequence) the longest prefix of its prompt
        already in the cache; returns the sequence and where the rest of its prompt starts. The slot's cache is not
        offered to other requests until _prefill has evaluated the rest."""
        lib = self.lib
        source, start = self._reusable(ids)
        # llama.cpp computes attention for one query per sequence with other kernels than for several, which round
        # differently: a prompt is never evaluated in a piece of one token, so that its numbers do not depend on how
        # much of it was in the cache (decoding is always one token a sequence, alone or beside others)
        start = start - 1 if start and start == len(ids) - 1 else start
        self.cached.pop(slot, None)
        if source != slot:
            lib.llama_memory_seq_rm(self.memory, slot, -1, -1)
            if start:
                lib.llama_memory_seq_cp(self.memory, source, slot, -1, -1)
        if start and not lib.llama_memory_seq_rm(self.memory, slot, start, -1):
            lib.llama_memory_seq_rm(self.memory, slot, -1, -1)  # the cache cannot cut there: evaluate it all
            start = 0
        self.reused += start
        return _Sequence(ticket, ids, params, self._sampler(params)), start

    def _prefill(self, starting: list[tuple[int, _Sequence, int]]) -> None:
        """Evaluate the rest of the new requests' prompts and sample each one's first token. Requests with as many
        tokens left go in one batch when they fit: llama.cpp evaluates their equal shares side by side, each whole
        in one piece, reading the weights once for all of them. Different lengths would be cut into pieces of
        llama.cpp's choosing, some of one token, so they go one length after another."""
        by_length: dict[int, list[tuple[int, _Sequence, int]]] = {}
        for entry in starting:
            by_length.setdefault(len(entry[1].ids) - entry[2], []).append(entry)
        for length, group in by_length.items():
            if len(group) > 1 and length * len(group) <= self.n_batch:
                self.batch.n_tokens = 0
                rows = []
                for slot, seq, start in group:
                    for pos in range(start, len(seq.ids)):
                        self._add(seq.ids[pos], pos, slot, pos == len(seq.ids) - 1)
                    rows.append(self.batch.n_tokens - 1)
                self._decode()
                for (slot, seq, _), row in zip(group, rows):
                    self.cached[slot] = seq.ids
                    self._accept(seq, self._sample(seq, row))
                continue
            for slot, seq, start in group:
                self._evaluate(seq.ids, start, slot)
                self.cached[slot] = seq.ids
                self._accept(seq, self._sample(seq, self.batch.n_tokens - 1))

    def _sample(self, seq: _Sequence, i: int) -> int:
        """The next token from the logits of batch row i. Greedy is numpy's argmax (the first of equal maxima, as
        llama.cpp's greedy sampler picks): a llama.cpp sampler copies the whole vocabulary into candidates first,
        0.3 ms a token for a 262k vocabulary, 2 ms of each 8-sequence step."""
        if seq.sampler is None:
            import numpy as np

            return int(
                np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)).argmax()
            )
        return self.lib.llama_sampler_sample(seq.sampler, self.ctx, i)

    def _free(self, seq: _Sequence) -> None:
        if seq.sampler is not None:
            self.lib.llama_sampler_free(seq.sampler)
            seq.sampler = None

    def _accept(self, seq: _Sequence, token: int) -> None:
        if self.lib.llama_vocab_is_eog(self.vocab, token):
            seq.finish = "stop"
            seq.produced.append(token)
            return
        seq.produced.append(token)
        seq.text += self.llm.detokenize([token])
        text = seq.text.decode("utf-8", errors="ignore")
        cuts = [i for i in (text.find(s) for s in seq.params.stop if s) if i >= 0]
        if cuts:
            seq.text, seq.finish = text[: min(cuts)].encode(), "stop"
        elif len(seq.produced) >= seq.params.max_tokens:
            seq.finish = "length"

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None
