"""Cross-entropy at labelled positions only, through the output head in chunks.

Gemma's 262k-token head makes full logits the biggest tensor in a step ([tokens x vocab] floats). Here only the
hidden states of labelled positions reach the head, a chunk at a time, and each chunk's gradient with respect to
its hidden states (and the head, if it trains) is computed right away, so no chunk's logits outlive its loop turn
and the backward pass needs no second head matmul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from finch.train.data import IGNORE


class _ChunkedHeadLoss(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T` against `targets`; gradients computed during forward."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, chunk):
        grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            y = targets[start : start + chunk]
            raw = (h @ weight.T).float()
            logits = softcap * torch.tanh(raw / softcap) if softcap else raw
            total += F.cross_entropy(logits, y, reduction="sum")
            if grad_hidden is None and grad_weight is None:
                continue
            grad_logits = torch.softmax(logits, dim=-1)  # d(sum CE)/d(logits) = softmax - one_hot
            grad_logits[torch.arange(len(y), device=y.device), y] -= 1
            if softcap:
                grad_logits *= 1 - (logits / softcap) ** 2
            grad_logits = grad_logits.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight += (grad_logits.T @ h).float()
        ctx.save_for_backward(
            grad_hidden if grad_hidden is not None else torch.empty(0),
            grad_weight if grad_weight is not None else torch.empty(0),
        )
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        hidden_out = grad_hidden * grad_total.to(grad_hidden.dtype) if grad_hidden.numel() else None
        weight_out = (grad_weight * grad_total).to(ctx.weight_dtype) if grad_weight.numel() else None
        return hidden_out, weight_out, None, None, None


def labelled_positions(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states that predict a label (position t predicts labels[t + 1]) and those labels."""
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    y = labels[:, 1:].reshape(-1)
    keep = y != IGNORE
    return h[keep], y[keep]


def chunked_loss_sum(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    head_weight: torch.Tensor,
    softcap: float | None = None,
    chunk: int = 1024,
) -> tuple[torch.Tensor, int]:
    """(sum of token losses, number of labelled tokens); divide by the step's token count for a mean."""
    h, y = labelled_positions(hidden, labels)
    if y.numel() == 0:
        return hidden.sum() * 0.0, 0
    return _ChunkedHeadLoss.apply(h, head_weight, y, softcap, chunk), int(y.numel())


def naive_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The reference: full logits, shifted, summed cross-entropy (what HF computes, before the mean)."""
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    y = labels[:, 1:].reshape(-1)
    return F.cross_entropy(flat, y, ignore_index=IGNORE, reduction="sum"), int((y != IGNORE).sum())
