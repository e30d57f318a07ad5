"""Cross-entropy at labelled positions only, through the output head in chunks.

Gemma's 262k-token head makes full logits the biggest tensor in a step ([tokens x vocab] floats). Here only the
hidden states of labelled positions reach the head, a chunk at a time, and each chunk's gradient with respect to
its hidden states (and the head, if it trains) is computed right away, so no chunk's logits outlive its loop turn
and the backward pass needs no second head matmul.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from finch.train.data import IGNORE


class _ChunkedHeadLoss(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T` against `targets`; gradients computed during forward.

    Labelled rows go through in chunks; for each chunk the vocabulary goes through in blocks small enough that a
    block of the head and of the logits stay in cache: pass 1 writes exp(logit - running max) block by block and
    keeps the running softmax sum (online softmax), pass 2 rescales each block to probabilities and accumulates the
    hidden-state gradient from the same block of the head. The exponentials and softmax sums are taken while a
    block is still in cache, and a soft-capped head needs no second [vocab x chunk] buffer for its derivative (tanh
    is recovered from the stored exponentials)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, chunk, vocab_block, workspace):
        n_rows, vocab = hidden.shape[0], weight.shape[0]
        chunk = math.ceil(n_rows / math.ceil(n_rows / chunk))  # equal chunks: a thin last one wastes the matmul
        grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        wants_grad = grad_hidden is not None or grad_weight is not None
        exp_buffer = (workspace or LossWorkspace()).buffer(vocab * chunk, hidden.device)
        starts = range(0, vocab, vocab_block)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, n_rows, chunk):
            h = hidden[start : start + chunk]
            y = targets[start : start + chunk]
            n = len(y)
            h_t = h.T.contiguous()
            exps = exp_buffer[: vocab * n].view(vocab, n)
            running_max = torch.full((n,), -math.inf, dtype=torch.float32, device=h.device)
            running_sum = torch.zeros(n, dtype=torch.float32, device=h.device)
            block_max = torch.empty((len(starts), n), dtype=torch.float32, device=h.device)
            for b, v in enumerate(starts):  # pass 1: online softmax
                block = exps[v : v + vocab_block]
                _logits(block, weight[v : v + vocab_block], h_t)
                if softcap:
                    block.div_(softcap).tanh_().mul_(softcap)
                new_max = torch.maximum(running_max, block.amax(dim=0))
                running_sum.mul_(torch.exp(running_max - new_max)).add_(block.sub_(new_max).exp_().sum(dim=0))
                running_max = block_max[b] = new_max
            target_logits = (weight[y].float() * h.float()).sum(dim=1)
            if softcap:
                target_logits = softcap * torch.tanh(target_logits / softcap)
            total += (running_max + running_sum.log() - target_logits).sum()
            if not wants_grad:
                continue
            # d(sum CE)/d(logits) = softmax - one_hot; the one-hot part is subtracted after the loop
            scales = torch.exp(block_max - running_max) / running_sum
            gh_t = torch.zeros((hidden.shape[1], n), dtype=torch.float32, device=h.device)  # transposed: ~10% faster
            for b, v in enumerate(starts):  # pass 2: gradients, block by block
                block = exps[v : v + vocab_block]
                w = weight[v : v + vocab_block]
                if softcap:  # d(c tanh(raw / c)) / d(raw) = 1 - tanh^2, tanh recovered from exp(capped - max)
                    squash = block.clamp_min(1e-38).log_().add_(block_max[b]).div_(softcap).square_().neg_().add_(1)
                    block.mul_(squash)
                block.mul_(scales[b])
                g = block if w.dtype == torch.float32 else block.to(w.dtype)
                if grad_hidden is not None and w.dtype == torch.float32:
                    gh_t.addmm_(w.T, g)
                elif grad_hidden is not None:
                    gh_t.add_(w.T @ g)
                if grad_weight is not None:
                    grad_weight[v : v + vocab_block].add_((g @ h).float())
            target_grad = torch.ones(n, dtype=torch.float32, device=h.device)
            if softcap:
                target_grad = 1 - (target_logits / softcap).square()
            if grad_hidden is not None:
                grad_hidden[start : start + n] = gh_t.T - weight[y].float() * target_grad[:, None]
            if grad_weight is not None:
                grad_weight.index_add_(0, y, -h.float() * target_grad[:, None])
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
        return hidden_out, weight_out, None, None, None, None, None


class LossWorkspace:
    """The head loss's [vocab x chunk] float32 buffer, overwritten by every chunk and kept across calls by whoever
    holds this: on this kind of VM first touch of fresh memory costs ~0.15 s per 134 MB, a cost better paid once
    per run than once per forward pass."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def buffer(self, numel: int, device: torch.device) -> torch.Tensor:
        if self._buffer is None or self._buffer.numel() < numel or self._buffer.device != device:
            self._buffer = None  # free the old one first: never two alive at once
            self._buffer = torch.empty(numel, dtype=torch.float32, device=device)
        return self._buffer[:numel]


def _logits(out: torch.Tensor, weight: torch.Tensor, hidden_t: torch.Tensor) -> None:
    """out = weight @ hidden_t, in float32 whatever the weights' dtype."""
    if weight.dtype == torch.float32 and hidden_t.dtype == torch.float32:
        torch.mm(weight, hidden_t, out=out)
    else:
        out.copy_(weight @ hidden_t.to(weight.dtype))


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
    chunk: int = 128,
    vocab_block: int = 2048,
    workspace: LossWorkspace | None = None,
) -> tuple[torch.Tensor, int]:
    """(sum of token losses, number of labelled tokens); divide by the step's token count for a mean."""
    h, y = labelled_positions(hidden, labels)
    if y.numel() == 0:
        return hidden.sum() * 0.0, 0
    return _ChunkedHeadLoss.apply(h, head_weight, y, softcap, chunk, vocab_block, workspace), int(y.numel())


def naive_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The reference: full logits, shifted, summed cross-entropy (what HF computes, before the mean)."""
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    y = labels[:, 1:].reshape(-1)
    return F.cross_entropy(flat, y, ignore_index=IGNORE, reduction="sum"), int((y != IGNORE).sum())
