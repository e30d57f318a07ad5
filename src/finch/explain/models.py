"""The model being explained: full-precision weights with eager attention, and its greedy answer.

A GGUF (built-in or a user's file) is dequantised into an HF directory by finch's model preparation; its answer is
the one the quantised model itself gives through llama.cpp (what a user of that GGUF sees), and the dequantised
model's own greedy answer is kept beside it so a reader sees whether the two agree. A LoRA or QLoRA run directory is
its adapter over the full-precision base, so an NF4 run is explained on dequantised weights too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finch.inference.base import chat_prompt_ids


@dataclass
class ExplainedModel:
    ref: str
    model: object  # a transformers (or PEFT) causal LM in eval mode, float32, eager attention
    tokenizer: object
    prompt_format: object
    eos_ids: set[int]
    gguf: Path | None  # the quantised file this model comes from, if any
    _llama: object = field(default=None, repr=False)  # that file in llama.cpp, once an answer needed it

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return chat_prompt_ids(self.prompt_format, self._tokenize, messages)

    def _tokenize(self, text: str, add_bos: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_bos).input_ids

    def greedy(self, ids: list[int], max_tokens: int) -> list[int]:
        """The answer's ids, without the token that ended it."""
        import torch

        with torch.no_grad():
            out = self.model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=sorted(self.eos_ids),
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return _until_eos(out[0, len(ids) :].tolist(), self.eos_ids)

    def next_logprobs(self, ids: list[int]):
        import torch

        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1).logits[0, -1]
        return torch.log_softmax(logits.float(), -1)

    def gguf_greedy(self, ids: list[int], max_tokens: int) -> list[int]:
        """The quantised model's own greedy answer to the same prompt ids, through llama.cpp (loaded once)."""
        from finch.inference.llama_cpp_backend import LlamaCppBackend

        needed = len(ids) + max_tokens + 8
        if self._llama is None or self._llama.context_length < needed:
            if self._llama is not None:
                self._llama.close()
            self._llama = LlamaCppBackend(self.gguf, n_ctx=max(needed, 2048))
        llm = self._llama.llm
        answer = []
        for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0, reset=True):
            if token in self.eos_ids or len(answer) == max_tokens:
                break
            answer.append(token)
        return answer


def _until_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:i]
    return tokens


def load_explained(ref: str, models_dir: Path) -> ExplainedModel:
    """Any model reference finch accepts, ready to be traced (float32: gradients and attention in full precision)."""
    from finch.inference.loader import load_backend
    from finch.models.prepare import ensure_builtin_gguf
    from finch.models.resolve import resolve_model

    resolved = resolve_model(ref, models_dir)
    backend = load_backend(ref, models_dir, backend="transformers", dtype="float32")
    base = backend.model.get_base_model() if hasattr(backend.model, "get_base_model") else backend.model
    base.set_attn_implementation("eager")
    # Gradients are taken with respect to the input embeddings only: weights that ask for none skip half the
    # backward pass's matmuls.
    backend.model.requires_grad_(False)
    gguf = None
    if resolved.kind == "builtin":
        gguf = ensure_builtin_gguf(resolved.name, resolved.gguf)
    elif resolved.kind == "gguf":
        gguf = resolved.gguf
    return ExplainedModel(ref, backend.model, backend.tokenizer, backend.prompt_format, backend.eos_ids, gguf)
