"""transformers for HF directories, with a LoRA adapter applied on the fly and batched generate()."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from finch.errors import UsageError
from finch.inference.base import Abilities, Backend, PromptFormat, StreamChunk, chat_prompt_ids
from finch.inference.params import Completion, GenerationParams, TokenLogprob, cut_at_stop


class TransformersBackend(Backend):
    name = "transformers"
    abilities = Abilities(renders_prompts=True)

    def __init__(self, hf_dir: Path, adapter: Path | None = None, dtype: str | None = None, batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from finch.models.chat_format import native_chat_format
        from finch.system import system_info

        hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise between finch's own output
        dtype = dtype or system_info().profile.dtype
        self.tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype))
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()
        self.batch_size = batch_size
        self.model_name = (adapter or hf_dir).name
        config = self.model.config
        self.context_length = getattr(config, "max_position_embeddings", None) or 4096
        template = self.tokenizer.chat_template
        eos_ids = self.model.generation_config.eos_token_id
        self.eos_ids = {eos_ids} if isinstance(eos_ids, int) else set(eos_ids or [self.tokenizer.eos_token_id])
        if not template:
            fmt = native_chat_format(config.model_type, self.tokenizer.get_vocab())
            template = fmt.template
            if fmt.end_of_turn:
                self.eos_ids.add(self.tokenizer.convert_tokens_to_ids(fmt.end_of_turn))
        self.prompt_format = PromptFormat(template, self.tokenizer.bos_token or "", self.tokenizer.eos_token or "")

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_bos).input_ids

    def _generate_kwargs(self, params: GenerationParams) -> dict:
        sample = params.temperature > 0
        kwargs = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sample,
            "eos_token_id": sorted(self.eos_ids),
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        return kwargs

    def _check_fits(self, ids: list[int]) -> None:
        if len(ids) >= self.context_length:
            raise UsageError(f"the prompt has {len(ids)} tokens; the model's context holds {self.context_length}.")

    def _generate(self, batch: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        """Batched generate with left padding; n samples per prompt are rows of the same batch."""
        import torch

        for ids in batch:
            self._check_fits(ids)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        rows = [ids for ids in batch for _ in range(params.n)]
        results: list[Completion] = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            padded = self.tokenizer.pad({"input_ids": chunk}, return_tensors="pt")
            with torch.no_grad():
                out = self.model.generate(
                    **padded,
                    **self._generate_kwargs(params),
                    output_scores=params.logprobs is not None,
                    return_dict_in_generate=True,
                )
            new = out.sequences[:, padded["input_ids"].shape[1] :]
            for row, ids in enumerate(chunk):
                results.append(self._completion(new[row], ids, params, out.scores, row))
        return [results[i * params.n : (i + 1) * params.n] for i in range(len(batch))]

    def _completion(self, new_ids, prompt_ids, params, scores, row) -> Completion:
        import torch

        tokens = new_ids.tolist()
        ended = next((i for i, t in enumerate(tokens) if t in self.eos_ids or t == self.tokenizer.pad_token_id), None)
        if ended is not None:
            tokens = tokens[:ended]
        text, stopped = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), params.stop)
        logprobs = None
        if params.logprobs is not None:
            logprobs = []
            for step, token in enumerate(tokens):
                dist = torch.log_softmax(scores[step][row].float(), -1)
                top = torch.topk(dist, params.logprobs) if params.logprobs else None
                alternatives = {self.tokenizer.decode([int(i)]): float(v) for v, i in zip(*top)} if top else {}
                logprobs.append(TokenLogprob(self.tokenizer.decode([token]), float(dist[token]), alternatives))
        return Completion(
            text=text,
            finish_reason="stop" if ended is not None or stopped else "length",
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(tokens) + (ended is not None),
            logprobs=logprobs,
        )

    def chat(self, conversations, params: GenerationParams) -> list[list[Completion]]:
        return self._generate([chat_prompt_ids(self.prompt_format, self.tokenize, c) for c in conversations], params)

    def complete(self, prompts: list[str], params: GenerationParams, echo: bool = False) -> list[list[Completion]]:
        if echo:
            raise UsageError("echo is not supported by the transformers backend; serve a GGUF with llama-cpp.")
        return self._generate([self.tokenize(p, add_bos=True) for p in prompts], params)

    def _stream_ids(self, ids: list[int], params: GenerationParams) -> Iterator[StreamChunk]:
        """Generate in a thread and yield text as it comes; closing the iterator stops the generation."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return cancel.is_set()

        self._check_fits(ids)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        cancel, outcome = threading.Event(), {}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {**self._generate_kwargs(params), "streamer": streamer}
        kwargs["stopping_criteria"] = StoppingCriteriaList([Cancelled()])

        def run() -> None:
            new = self.model.generate(torch.tensor([ids]), **kwargs)[0, len(ids) :].tolist()
            outcome["stopped"] = any(t in self.eos_ids for t in new) or len(new) < params.max_tokens

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        produced = ""
        try:
            for piece in streamer:
                produced += piece
                text, stopped = cut_at_stop(produced, params.stop)
                if stopped:
                    yield StreamChunk(text[len(produced) - len(piece) :], "stop")
                    return
                yield StreamChunk(piece)
            worker.join()
            yield StreamChunk("", "stop" if outcome.get("stopped") else "length")
        finally:
            cancel.set()

    def stream_chat(self, messages, params: GenerationParams) -> Iterator[StreamChunk]:
        return self._stream_ids(chat_prompt_ids(self.prompt_format, self.tokenize, messages), params)

    def stream_complete(self, prompt: str, params: GenerationParams) -> Iterator[StreamChunk]:
        return self._stream_ids(self.tokenize(prompt, add_bos=True), params)

    def close(self) -> None:
        del self.model
