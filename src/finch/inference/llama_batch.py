"""Several generations decoded together through one llama.cpp context, so a CPU reads the weights once per step
for all of them instead of once per sequence (decoding a small model is memory-bound), and their shared prompt
prefix (the template and its seed examples) is evaluated once.

llama-cpp-python's Llama runs one sequence; this uses its low-level API (llama_batch with several seq_ids, one
KV cache shared by all sequences) on the model the Llama already loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from finch.errors import FinchError
from finch.inference.params import GenerationParams

TOP_K, MIN_P = 40, 0.05  # llama-cpp-python's create_completion defaults, so both paths sample alike


@dataclass
class _Sequence:
    ids: list[int]
    params: GenerationParams
    sampler: object = None
    produced: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None  # stop | length once done


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
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = slots * context_length  # room for every sequence at its longest, shared prefix or not
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = slots
        params.n_threads = params.n_threads_batch = n_threads or os.cpu_count()
        params.kv_unified = True  # one cache: a shared prefix is stored once and belongs to every sequence
        params.swa_full = True  # sliding-window layers keep every position, so a sequence can be cut back
        self.ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if not self.ctx:
            raise FinchError("llama.cpp could not create a batched context (out of memory?).")
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, slots)
        self.n_batch = params.n_batch

    def _add(self, token: int, pos: int, seqs: list[int], logits: bool) -> None:
        b = self.batch
        i = b.n_tokens
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, len(seqs), logits
        for k, s in enumerate(seqs):
            b.seq_id[i][k] = s
        b.n_tokens += 1

    def _decode(self) -> None:
        code = self.lib.llama_decode(self.ctx, self.batch)
        if code != 0:
            raise FinchError(f"llama.cpp could not decode a batch (llama_decode returned {code}).")

    def _sampler(self, params: GenerationParams):
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if params.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
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

    def generate(self, requests: list[tuple[list[int], GenerationParams]]) -> list[tuple[str, str, int]]:
        """(text, finish_reason, completion tokens) per (prompt ids, params); at most `slots` requests."""
        if not requests:
            return []
        if len(requests) > self.slots:
            raise ValueError(f"{len(requests)} requests for {self.slots} slots")
        lib = self.lib
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        seqs = [_Sequence(ids, params, self._sampler(params)) for ids, params in requests]
        try:
            shared = common_prefix([s.ids for s in seqs])
            everyone = list(range(len(seqs)))
            for start in range(0, shared, self.n_batch):
                self.batch.n_tokens = 0
                for pos in range(start, min(shared, start + self.n_batch)):
                    self._add(seqs[0].ids[pos], pos, everyone, False)
                self._decode()
            for n, seq in enumerate(seqs):
                for start in range(shared, len(seq.ids), self.n_batch):
                    self.batch.n_tokens = 0
                    end = min(len(seq.ids), start + self.n_batch)
                    for pos in range(start, end):
                        self._add(seq.ids[pos], pos, [n], pos == len(seq.ids) - 1)
                    self._decode()
                self._accept(seq, lib.llama_sampler_sample(seq.sampler, self.ctx, self.batch.n_tokens - 1))
            while True:
                active = [n for n, s in enumerate(seqs) if s.finish is None]
                if not active:
                    break
                self.batch.n_tokens = 0
                for n in active:
                    seq = seqs[n]
                    self._add(seq.produced[-1], len(seq.ids) + len(seq.produced) - 1, [n], True)
                self._decode()
                for i, n in enumerate(active):
                    self._accept(seqs[n], lib.llama_sampler_sample(seqs[n].sampler, self.ctx, i))
        finally:
            for seq in seqs:
                lib.llama_sampler_free(seq.sampler)
        return [(s.text.decode("utf-8", errors="ignore"), s.finish, len(s.produced)) for s in seqs]

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
