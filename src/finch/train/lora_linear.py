"""A LoRA linear layer's forward and backward as one autograd function, for training on a CPU.

PEFT computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` as separate autograd ops. On a CPU each one is a
pass over a [tokens x features] tensor, and together they cost more than the small LoRA matmuls: dropout writes a
float copy of the input for every LoRA layer (kept for backward: ~0.45 MB a token on Gemma 3 270M), the scaling and
the sum each take a pass, and backward mirrors them. Here the scaling folds into the [tokens x rank] tensor, the
LoRA product accumulates into the base output inside its matmul, and the dropout mask is a bool from which backward
recomputes the dropped input. The same for the gradient with respect to the input: the LoRA part is masked and the
base part accumulates onto it in its matmul.

The mask takes four 16-bit lanes from each 64-bit random draw: torch's CPU dropout draws one float per element
through `bernoulli_`, which was 9% of a step. It draws from torch's default generator, so seeds and checkpointed RNG
state govern it as they do nn.Dropout. The drop probability is p to within 1/65536.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

LANES = 65536  # the 16-bit lanes' range


def drop_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor, True (drop) with probability p, rounded to a multiple of 1/65536."""
    n = shape.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    threshold = round(p * LANES) - LANES // 2
    return bits.view(torch.int16)[:n].view(shape) < threshold


class _LoraLinear(torch.autograd.Function):
    """base(x) + (dropout(x) @ A.T) @ B.T * scaling, with frozen base weight and bias."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, p: float):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        out = F.linear(x, weight, bias)
        drop = drop_mask(x.shape, p, x.device) if p > 0 else None
        dropped = x if drop is None else torch.where(drop, 0.0, x)
        # z carries dropout's 1 / (1 - p); B.T carries `scaling` (both small: rank columns)
        z = F.linear(dropped.to(lora_a.dtype), lora_a).mul_(1 / (1 - p))
        if out.dtype == z.dtype:
            out.addmm_(z, lora_b.T, alpha=scaling)
        else:  # PEFT adds in the adapter's dtype and casts back
            out = (out.to(z.dtype) + (z @ lora_b.T) * scaling).to(out.dtype)
        ctx.save_for_backward(x, drop if drop is not None else torch.empty(0), z, weight, lora_a, lora_b)
        ctx.scaling, ctx.p, ctx.shape = scaling, p, shape
        return out.view(*shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x, drop, z, weight, lora_a, lora_b = ctx.saved_tensors
        drop = drop if drop.numel() else None
        grad = grad.reshape(-1, grad.shape[-1])
        grad_lora = grad.to(lora_a.dtype)
        grad_b = (grad_lora.T @ z).mul_(ctx.scaling)
        # d loss / d (dropped x @ A.T), dropout's scale included
        grad_z = (grad_lora @ lora_b).mul_(ctx.scaling / (1 - ctx.p))
        dropped = x if drop is None else torch.where(drop, 0.0, x)
        grad_a = grad_z.T @ dropped.to(lora_a.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_z @ lora_a
            if drop is not None:
                grad_x.masked_fill_(drop, 0.0)
            if grad_x.dtype == weight.dtype:
                grad_x.addmm_(grad, weight)
            else:
                grad_x = grad @ weight + grad_x.to(weight.dtype)
            grad_x = grad_x.view(ctx.shape)
        return grad_x, None, None, grad_a, grad_b, None, None


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """A PEFT LoRA Linear's forward through _LoraLinear when it is the plain case; PEFT's own forward otherwise."""
    active = [name for name in self.active_adapters if name in self.lora_A]
    plain = not (args or kwargs or self.disable_adapters or self.merged) and len(active) == 1
    if not plain or active[0] in self.lora_variant or self.lora_B[active[0]].bias is not None:
        return self._peft_forward(x, *args, **kwargs)
    name = active[0]
    dropout = self.lora_dropout[name]
    p = dropout.p if isinstance(dropout, torch.nn.Dropout) and self.training else 0.0
    base = self.base_layer
    return _LoraLinear.apply(
        x, base.weight, base.bias, self.lora_A[name].weight, self.lora_B[name].weight, self.scaling[name], p
    )


def use_fused_lora(model) -> int:
    """Route every LoRA Linear of a PEFT model with a frozen nn.Linear base through the fused function; returns
    how many."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    count = 0
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if not isinstance(module, LoraLinear) or type(base) is not torch.nn.Linear or base.weight.requires_grad:
            continue
        module._peft_forward = module.forward
        module.forward = types.MethodType(_fused_forward, module)
        count += 1
    return count
