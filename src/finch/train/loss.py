"""Cross-entropy at labelled positions only, through the output head in vocabulary blocks.

Gemma's 262k-token head makes full logits the biggest tensor in a step ([tokens x vocab] floats). Here only the
hidden states of labelled positions reach the head, and the vocabulary goes through in blocks small enough that a
block of the head and its logits stay in cache. Softmax runs online, as in flash attention: a running max and sum
per row, and the hidden-state gradient accumulated from each block's unnormalised probabilities while that block of
the head is still in cache, rescaled whenever a row's max grows and divided by the sum at the end. So no logits
outlive their block, the backward pass needs no second head matmul, and a frozen head (LoRA) costs two matmuls per
block and nothing written to memory. A trainable head (full fine-tuning) takes a second pass for its own gradient,
which needs the final softmax sums: one more matmul, in exchange for never holding [vocab x rows] floats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from finch.train.data import IGNORE


class _ChunkedHeadLoss(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T` (soft-capped if `softcap`) against `targets`; the gradients are
    computed during forward and handed out, scaled, by backward."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, chunk, vocab_block):
        grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        n_rows = hidden.shape[0]
        chunk = math.ceil(n_rows / math.ceil(n_rows / chunk))  # equal chunks: a thin last one wastes the matmul
        for start in range(0, n_rows, chunk):
            h, y = hidden[start : start + chunk], targets[start : start + chunk]
            scan = _SoftmaxScan(h, weight, softcap, vocab_block, grad_hidden is not None)
            # rounded as _logits rounds the scan's logits (to the hidden states' dtype): an fp32 target logit beside
            # bf16-rounded ones made a near-certain token's loss negative
            target_logits = (weight[y].float() * h.float()).sum(dim=1).to(h.dtype).float()
            target_grad = torch.ones_like(target_logits)  # d(target logit) / d(raw target logit)
            if softcap:
                target_logits = softcap * torch.tanh(target_logits / softcap)
                target_grad = 1 - (target_logits / softcap).square()
            total += (scan.log_sum_exp - target_logits).sum()
            # d(sum CE)/d(raw logits) = softmax * d(capped)/d(raw) - one_hot * target_grad
            if grad_hidden is not None:
                grad_hidden[start : start + len(y)] = scan.grad_hidden - weight[y].float() * target_grad[:, None]
            if grad_weight is not None:
                scan.add_weight_grad(grad_weight)
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
        return hidden_out, weight_out, None, None, None, None


class _SoftmaxScan:
    """One pass over the vocabulary for rows `h`: each row's log-sum-exp of the (capped) logits and, if asked,
    the gradient of the summed log-sum-exp with respect to `h`, i.e. softmax-weighted head rows."""

    def __init__(self, h: torch.Tensor, weight: torch.Tensor, softcap: float | None, vocab_block: int, grad: bool):
        n, vocab = h.shape[0], weight.shape[0]
        self.h, self.weight, self.softcap, self.vocab_block = h, weight, softcap, vocab_block
        h_t = h.T.contiguous()
        block_buffer = torch.empty((min(vocab_block, vocab), n), dtype=torch.float32, device=h.device)
        capped_buffer = torch.empty_like(block_buffer) if softcap else None
        running_max = torch.full((n,), -math.inf, dtype=torch.float32, device=h.device)
        running_sum = torch.zeros(n, dtype=torch.float32, device=h.device)
        grad_t = torch.zeros((h.shape[1], n), dtype=torch.float32, device=h.device) if grad else None  # transposed
        # A head stored narrower than the hidden states (bf16 beside fp32, `keep_embedding_in_bf16`) is widened a
        # block at a time into a buffer that stays in cache: half the memory read, no slower than an fp32 head.
        weight_buffer = None
        if weight.dtype != h.dtype:
            weight_buffer = torch.empty((block_buffer.shape[0], h.shape[1]), dtype=h.dtype, device=h.device)
        for v in range(0, vocab, vocab_block):
            w = weight[v : v + vocab_block]
            if weight_buffer is not None:
                w = weight_buffer[: len(w)].copy_(w)
            raw = block_buffer[: len(w)]
            _logits(raw, w, h_t)
            if softcap:  # capped = c tanh(raw / c); its derivative 1 - tanh^2 multiplies the softmax below
                tanh = raw.div_(softcap).tanh_()
                exps = torch.mul(tanh, softcap, out=capped_buffer[: len(w)])
            else:
                exps = raw
            block_max = exps.amax(dim=0)
            if bool((block_max > running_max).any()):  # a row's max grew: rescale what was summed under the old one
                new_max = torch.maximum(running_max, block_max)
                factor = torch.exp(running_max - new_max)
                running_sum.mul_(factor)
                if grad_t is not None:
                    grad_t.mul_(factor)
                running_max = new_max
            running_sum.add_(exps.sub_(running_max).exp_().sum(dim=0))
            if grad_t is None:
                continue
            if softcap:
                exps.mul_(tanh.square_().neg_().add_(1))
            if w.dtype == torch.float32:
                grad_t.addmm_(w.T, exps)
            else:
                grad_t.add_(w.T @ exps.to(w.dtype))
        self.running_max, self.running_sum = running_max, running_sum
        self.log_sum_exp = running_max + running_sum.log()
        self.grad_hidden = (grad_t / running_sum).T if grad_t is not None else None

    def add_weight_grad(self, grad_weight: torch.Tensor) -> None:
        """grad_weight += softmax(capped logits) * d(capped)/d(raw), as [vocab x rows], @ h: a second pass, since
        a block's probabilities need every block's sum."""
        h_t = self.h.T.contiguous()
        h = self.h.to(torch.float32)
        block_buffer = torch.empty((min(self.vocab_block, self.weight.shape[0]), h.shape[0]), device=h.device)
        for v in range(0, self.weight.shape[0], self.vocab_block):
            w = self.weight[v : v + self.vocab_block]
            probs = block_buffer[: len(w)]
            _logits(probs, w, h_t)
            if self.softcap:
                tanh = probs.div_(self.softcap).tanh_()
                slope = 1 - tanh.square()
                probs = tanh.mul_(self.softcap).sub_(self.running_max).exp_().div_(self.running_sum).mul_(slope)
            else:
                probs.sub_(self.running_max).exp_().div_(self.running_sum)
            grad_weight[v : v + self.vocab_block].addmm_(probs, h)


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
    chunk: int = 1024,
    vocab_block: int = 2048,
) -> tuple[torch.Tensor, int]:
    """(sum of token losses, number of labelled tokens); divide by the step's token count for a mean."""
    h, y = labelled_positions(hidden, labels)
    if y.numel() == 0:
        return hidden.sum() * 0.0, 0
    return _ChunkedHeadLoss.apply(h, head_weight, y, softcap, chunk, vocab_block), int(y.numel())


def naive_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The reference: full logits, shifted, summed cross-entropy (what HF computes, before the mean)."""
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    y = labels[:, 1:].reshape(-1)
    return F.cross_entropy(flat, y, ignore_index=IGNORE, reduction="sum"), int((y != IGNORE).sum())
