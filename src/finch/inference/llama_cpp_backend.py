"""llama.cpp in-process (llama-cpp-python) for GGUF models: the fastest way to generate on a CPU."""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finch.errors import FinchError, UsageError
from finch.inference.base import Abilities, Backend, PromptFormat, StreamChunk, chat_prompt_ids
from finch.inference.params import Completion, GenerationParams, TokenLogprob

GGML_LOG_LEVEL_ERROR = 4  # ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5


def quiet_llama_logs() -> None:
    """llama.cpp prints info lines to stderr even with verbose=False; keep only its errors."""
    import llama_cpp

    if hasattr(quiet_llama_logs, "callback"):
        return

    @llama_cpp.llama_log_callback
    def log(level, text, user_data):
        if level == GGML_LOG_LEVEL_ERROR:
            os.write(2, text)

    quiet_llama_logs.callback = log  # keep a reference: llama.cpp holds only the C pointer
    llama_cpp.llama_log_set(log, None)


@contextmanager
def _weights_repacked(repack: bool):
    """llama-cpp-python has no argument for llama.cpp's use_extra_bufts (weights repacked for the CPU's wide
    kernels), so the model defaults it reads are adjusted while a model loads."""
    import llama_cpp.llama_cpp as lib

    if repack:
        yield
        return
    defaults = lib.llama_model_default_params

    def without_repacking():
        params = defaults()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = without_repacking
    try:
        yield
    finally:
        lib.llama_model_default_params = defaults


class LlamaCppBackend(Backend):
    name = "llama-cpp"
    abilities = Abilities(renders_prompts=True, batch_decoding=True, choice_probs=True)

    def __init__(
        self,
        gguf: Path,
        prompt_format: PromptFormat | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        logits_all: bool = False,
        batch_slots: int = 16,
        batch_invariant: bool = False,
    ):
        """batch_invariant: compute every token's row with the kernels a lone token gets, so a request's greedy
        answer does not depend on what is decoded beside it. llama.cpp's CPU backend switches to other kernels for
        4 rows and more (weights repacked for 4-row tiles) and for 8 and more (tiled K-quants); they round
        differently, and a near-tie can then fall the other way. Measured on the built-in model (AVX-512): prompt
        evaluation 30% slower, decoding 8 sequences 5% slower, one sequence unchanged."""
        from llama_cpp import Llama

        quiet_llama_logs()
        if batch_invariant:
            os.environ["GGML_CPU_TILED_MM"] = "0"  # read once, at this process's first K-quant matmul of ≥ 8 rows
        try:
            with _weights_repacked(not batch_invariant):
                self.llm = Llama(
                    model_path=str(gguf),
                    n_ctx=n_ctx,
                    n_threads=n_threads or os.cpu_count(),
                    logits_all=logits_all,  # llama-cpp-python needs it for any logprobs; costs ctx × vocab floats
                    verbose=False,
                )
        except ValueError as e:
            raise FinchError(f"{gguf}: llama.cpp cannot load this GGUF ({e}).") from None
        self.model_name = gguf.stem
        self.context_length = min(n_ctx, self.llm.n_ctx())  # llama.cpp may round its context up
        self.logits_all = logits_all
        self.n_threads = n_threads
        self.batch_slots = batch_slots  # sequences chat_batch decodes together
        self._decoder = None
        self.prompt_format = prompt_format or self._format_from_metadata()

    def _format_from_metadata(self) -> PromptFormat:
        from finch.models.chat_format import native_chat_format

        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            vocab = {
                t
                for t in ("<start_of_turn>", "<|eot_id|>", "<|start_header_id|>", "<|im_start|>", "<|im_end|>")
                if len(self.llm.tokenize(t.encode(), add_bos=False, special=True)) == 1
            }
            template = native_chat_format(meta.get("general.architecture", ""), vocab).template
        return PromptFormat(template, self._piece(self.llm.token_bos()), self._piece(self.llm.token_eos()))

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _check_fits(self, ids: list[int]) -> None:
        if len(ids) >= self.context_length:
            raise UsageError(
                f"the prompt has {len(ids)} tokens; the context holds {self.context_length}; raise --ctx or shorten it."
            )

    def _run(self, ids: list[int], params: GenerationParams, stream: bool, echo_text: str | None = None):
        """echo_text: return the prompt too. llama-cpp-python can echo only a text prompt (it tokenizes it exactly as
        self.tokenize(text, add_bos=True) does), so echo passes the text and everything else the ids."""
        self._check_fits(ids)
        if params.logprobs is not None and not self.logits_all:
            raise UsageError("logprobs need the llama.cpp backend to keep all logits: start `finch serve --logprobs`.")
        self.llm.reset()
        return self.llm.create_completion(
            prompt=ids if echo_text is None else echo_text,
            max_tokens=min(params.max_tokens, self.context_length - len(ids)),
            temperature=params.temperature,
            top_p=params.top_p,
            stop=params.stop or None,
            seed=params.seed,
            logprobs=params.logprobs,
            echo=echo_text is not None,
            stream=stream,
        )

    def next_token_probs(
        self, messages: list[dict[str, str]], answer_prefix: str, choices: list[str]
    ) -> dict[str, float]:
        """The probability that the answer, after `answer_prefix`, goes on with each choice: the summed softmax of
        every token that reads as that choice (digits come as "4" and "▁4"). One forward pass, no sampling: the way
        to read a weak model's judgement, whose free text rarely holds a parseable rating."""
        import llama_cpp
        import numpy as np

        ids = chat_prompt_ids(self.prompt_format, self.tokenize, messages) + self.tokenize(answer_prefix, add_bos=False)
        self._check_fits(ids)
        self._eval_reusing_prefix(ids)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.llm.n_vocab(),))
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return {choice: float(probs[self._choice_tokens(choice)].sum()) for choice in choices}

    def _eval_reusing_prefix(self, ids: list[int]) -> None:
        """Evaluate `ids`, keeping the cache of the longest prefix they share with what was evaluated last: a judge
        block's prompts differ only in their last lines."""
        import llama_cpp

        cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
        shared = 0
        while shared < min(len(cached), len(ids) - 1) and cached[shared] == ids[shared]:
            shared += 1
        memory = llama_cpp.llama_get_memory(self.llm.ctx)
        if shared and llama_cpp.llama_memory_seq_rm(memory, -1, shared, -1):
            self.llm.n_tokens = shared
        else:
            self.llm.reset()
            shared = 0
        self.llm.eval(ids[shared:])

    def _choice_tokens(self, choice: str) -> list[int]:
        cache = self.__dict__.setdefault("_choice_cache", {})
        if choice not in cache:
            spaced = self.tokenize(" " + choice, add_bos=False)
            cache[choice] = sorted({t[0] for t in (self.tokenize(choice, add_bos=False), spaced[-1:], spaced) if t})
            cache[choice] = [t for t in cache[choice] if self._piece(t).strip() == choice]
        return cache[choice]

    def chat_stream(
        self, requests: deque[tuple[Any, list[dict[str, str]], GenerationParams]]
    ) -> Iterator[tuple[Any, Completion]]:
        """(key, completion) per (key, messages, params), in the order they finish, `batch_slots` decoded together
        (finch.inference.llama_batch): about twice the throughput of one request at a time on 2 CPU cores.
        `requests` may grow while this runs. Sampling is seeded per request, but the tokens need not match
        chat()'s, which samples through llama-cpp-python's own sampler."""
        from finch.inference.llama_batch import BatchDecoder

        if self._decoder is None:
            self._decoder = BatchDecoder(self.llm, self.batch_slots, self.context_length, self.n_threads)
        pending: deque = deque()
        asked: dict[int, tuple[Any, int]] = {}  # ticket -> (the caller's key, prompt tokens)

        def take_requests() -> None:
            while requests:
                key, messages, params = requests.popleft()
                ids = chat_prompt_ids(self.prompt_format, self.tokenize, messages)
                self._check_fits(ids)
                limit = min(params.max_tokens, self.context_length - len(ids))
                ticket = len(asked)
                asked[ticket] = (key, len(ids))
                pending.append((ticket, ids, params.model_copy(update={"max_tokens": limit, "n": 1})))

        take_requests()
        for ticket, text, finish, produced in self._decoder.stream(pending):
            key, prompt_tokens = asked[ticket]
            yield key, Completion(text, finish, prompt_tokens=prompt_tokens, completion_tokens=produced)
            take_requests()

    def _complete_ids(self, ids: list[int], params: GenerationParams, echo_text: str | None = None) -> list[Completion]:
        completions = []
        for i in range(params.n):
            seeded = params.model_copy(update={"seed": None if params.seed is None else params.seed + i})
            result = self._run(ids, seeded, stream=False, echo_text=echo_text)
            choice = result["choices"][0]
            completions.append(
                Completion(
                    text=choice["text"],
                    finish_reason="length" if choice["finish_reason"] == "length" else "stop",
                    prompt_tokens=result["usage"]["prompt_tokens"],
                    completion_tokens=result["usage"]["completion_tokens"],
                    logprobs=_logprobs(choice.get("logprobs")),
                )
            )
        return completions

    def chat(self, conversations, params: GenerationParams) -> list[list[Completion]]:
        return [
            self._complete_ids(chat_prompt_ids(self.prompt_format, self.tokenize, c), params) for c in conversations
        ]

    def complete(self, prompts: list[str], params: GenerationParams, echo: bool = False) -> list[list[Completion]]:
        return [self._complete_ids(self.tokenize(p, add_bos=True), params, p if echo else None) for p in prompts]

    def _stream_ids(self, ids: list[int], params: GenerationParams) -> Iterator[StreamChunk]:
        for part in self._run(ids, params.model_copy(update={"n": 1}), stream=True):
            choice = part["choices"][0]
            reason = choice.get("finish_reason")
            yield StreamChunk(choice["text"], None if reason is None else "length" if reason == "length" else "stop")

    def stream_chat(self, messages, params: GenerationParams) -> Iterator[StreamChunk]:
        return self._stream_ids(chat_prompt_ids(self.prompt_format, self.tokenize, messages), params)

    def stream_complete(self, prompt: str, params: GenerationParams) -> Iterator[StreamChunk]:
        return self._stream_ids(self.tokenize(prompt, add_bos=True), params)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
        self.llm.close()


def _logprobs(raw: dict | None) -> list[TokenLogprob] | None:
    """llama-cpp-python's logprobs as plain floats; the first echoed prompt token has none (None, as OpenAI)."""
    if not raw:
        return None
    tops = raw.get("top_logprobs") or [None] * len(raw["tokens"])
    return [
        TokenLogprob(token, _number(logprob), {k: float(v) for k, v in (top or {}).items()})
        for token, logprob, top in zip(raw["tokens"], raw["token_logprobs"], tops)
    ]


def _number(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
