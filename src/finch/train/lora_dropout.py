"""LoRA dropout with a cheaper mask, for training on a CPU.

PEFT applies nn.Dropout to every LoRA input, and torch's CPU dropout draws one float per element through
`bernoulli_`: 9% of a LoRA step on Gemma 3 270M (~113k draws per token). This draws 64 random bits at a time and
reads them as four 16-bit lanes, keeping an element when its lane clears the threshold: the drop probability is p to
within 1/65536, the mask is a bool (a quarter of the float noise dropout keeps for backward), and the whole dropout
costs ~0.4 ms instead of 1.1 ms per [256 x 640] input. It draws from torch's default generator, so seeds and
checkpointed RNG state govern it as they do nn.Dropout.
"""

from __future__ import annotations

import torch

LANES = 65536  # the 16-bit lanes' range


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor, True with probability 1 - p (p rounded to a multiple of 1/65536)."""
    n = shape.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    threshold = round(p * LANES) - LANES // 2
    return bits.view(torch.int16)[:n].view(shape) >= threshold


class _MaskDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = 1 / (1 - p)
        return torch.where(keep, x, 0.0).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None


class MaskDropout(torch.nn.Module):
    """nn.Dropout's behaviour (identity in eval mode, inputs scaled by 1 / (1 - p) in training), the mask above."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return _MaskDropout.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_mask_dropout(model) -> None:
    """Swap the nn.Dropout of every LoRA layer of a PEFT model for MaskDropout."""
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if isinstance(dropout, torch.nn.Dropout) and dropout.p > 0:
                dropouts[name] = MaskDropout(dropout.p)
