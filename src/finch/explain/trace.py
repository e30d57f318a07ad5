"""Where a model looks while it answers, from one pass over prompt + answer on full-precision weights.

Answer token j is predicted at position P + j - 1 (P prompt tokens), so row j of every map is that position: what
the model looked at, or what moved its log-probability, when it produced token j. Columns are the prompt's tokens.

- Attention: eager attention, so the weights exist; a forward hook on each layer keeps only the rows and columns
  the maps need and folds the head mean into the rollout, so no more than one layer's (heads × T × T) weights are
  alive at a time, whatever the depth.
- Rollout (Abnar & Zuidema, 2020): the head-mean attention of each layer, averaged with the identity for the
  residual stream, multiplied through the layers: how much each prompt token reaches each answer position.
- Gradient × input: d log p(answer_j) / d embedding, dotted with the embedding, per prompt token. One forward pass
  with the graph kept and one backward pass per answer token; it does not rely on attention at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_ATTENTION_MODULE = re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn$")


@dataclass
class Trace:
    """The maps of one answer under one model: rows are answer tokens, columns prompt tokens."""

    attention: np.ndarray  # (layers, heads, answer, prompt)
    rollout: np.ndarray  # (answer, prompt)
    attribution: np.ndarray  # (answer, prompt), gradient × input, signed
    answer_logprobs: np.ndarray  # (answer,): log p of each answer token under this model


def attention_modules(model) -> list:
    """Each decoder layer's self-attention module, in layer order (PEFT wrappers and multimodal shells included)."""
    found = {}
    for name, module in model.named_modules():
        match = _ATTENTION_MODULE.search(name)
        if match:
            found[int(match.group(1))] = module
    if not found:
        raise ValueError(f"{type(model).__name__}: no `layers.N.self_attn` modules to read attention from.")
    return [found[i] for i in sorted(found)]


def trace_answer(model, ids: list[int], prompt_len: int) -> Trace:
    """All maps of `ids` = prompt (the first prompt_len ids) + answer, under `model` (in eval mode, eager attention)."""
    attention, rollout = _attention_and_rollout(model, ids, prompt_len)
    attribution, logprobs = _gradient_x_input(model, ids, prompt_len)
    return Trace(attention, rollout, attribution, logprobs)


def _attention_and_rollout(model, ids: list[int], prompt_len: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    total = len(ids)
    rows = slice(prompt_len - 1, total - 1)  # the positions that predict the answer tokens
    per_layer: list[np.ndarray] = []
    rollout = torch.eye(total, dtype=torch.float64)

    def keep(module, args, output) -> None:
        nonlocal rollout
        weights = output[1]
        if weights is None:
            raise RuntimeError("the attention module returned no weights: it is not running eager attention.")
        weights = weights[0].detach().double()  # (heads, T, T)
        per_layer.append(weights[:, rows, :prompt_len].float().numpy())
        mixed = 0.5 * weights.mean(0) + 0.5 * torch.eye(total, dtype=torch.float64)
        rollout = mixed @ rollout

    hooks = [module.register_forward_hook(keep) for module in attention_modules(model)]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1)
    finally:
        for hook in hooks:
            hook.remove()
    return np.stack(per_layer), rollout[rows, :prompt_len].float().numpy()


def _gradient_x_input(model, ids: list[int], prompt_len: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    answer = torch.tensor(ids[prompt_len:])
    with torch.enable_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids])).detach().requires_grad_(True)
        # Logits only where answer tokens are predicted: a 262k vocabulary over every position would dwarf the model.
        logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=len(answer) + 1).logits[0, :-1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)[torch.arange(len(answer)), answer]
        rows = []
        for j in range(len(answer)):
            (grad,) = torch.autograd.grad(logprobs[j], embeds, retain_graph=j < len(answer) - 1)
            rows.append((grad[0, :prompt_len] * embeds[0, :prompt_len]).sum(-1).detach().float().numpy())
    return np.stack(rows), logprobs.detach().numpy()
