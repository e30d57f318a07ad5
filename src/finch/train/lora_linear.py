"""LoRA layers' forward and backward as single autograd functions, for training on a CPU.

PEFT computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` as separate autograd ops. On a CPU each one is a
pass over a [tokens x features] tensor, and together they cost more than the small LoRA matmuls: dropout writes a
float copy of the input for every LoRA layer (kept for backward), the scaling and the sum each take a pass, and
backward mirrors them. Here the scaling folds into the [tokens x rank] tensor, the LoRA product accumulates into
the base output inside its matmul, and dropout keeps only the positions it dropped, from which backward recomputes
the dropped input. The same for the gradient with respect to the input: the LoRA part is masked and the base part
accumulates onto it in its matmul.

A gated MLP (`down(act(gate(x)) * up(x))`, Gemma's and Llama's) whose three projections are LoRA layers runs as one
function: it keeps x, gate(x) and up(x) for backward and recomputes the activation and the product, instead of
keeping four [tokens x intermediate] tensors. On Gemma 3 270M that is 0.29 of the 1.31 MB of activations a token.

Dropout as drop positions: the gaps between the drops of independent Bernoulli(p) trials are geometric, so a
dropout of 0.05 draws one number for every 20 elements instead of one per element (torch's CPU dropout), and keeps
8 bytes for every 20 elements instead of a bool per element. `index_fill_` zeroes them in a copy of x, faster than
`where` with a bool mask. Draws come from torch's default generator, so seeds and checkpointed RNG state govern
them as they do nn.Dropout.
"""

from __future__ import annotations

import functools
import math
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def drop_positions(n: int, p: float, device: torch.device) -> torch.Tensor:
    """Ascending flat positions (int64) of the elements, among n, that a dropout of probability p drops: each gap
    between drops is 1 + floor(log(U) / log(1 - p)) for U uniform in (0, 1], i.e. geometric."""
    positions, start = [], 0
    while start < n:
        expected = (n - start) * p
        u = torch.rand(math.ceil(expected + 6 * math.sqrt(expected) + 16), dtype=torch.float64, device=device)
        gaps = torch.log1p(u.neg_()).div_(math.log1p(-p)).floor_().add_(1)  # 1 - U is uniform in (0, 1]
        ends = gaps.cumsum_(0).add_(start - 1)
        positions.append(ends[ends < n].long())
        start = int(ends[-1].item()) + 1  # six sigmas short only once in ~10^9 calls: then draw on from there
    return torch.cat(positions) if len(positions) > 1 else positions[0]


def _zeroed(x: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
    """x with the flat positions `drop` zeroed, as a copy (x may be another layer's input too)."""
    if drop is None:
        return x
    return x.clone(memory_format=torch.contiguous_format).view(-1).index_fill_(0, drop, 0.0).view(x.shape)


@dataclass
class _Lora:
    """One LoRA linear layer's tensors: frozen base weight and bias, adapter A [r x in] and B [out x r]."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    a: torch.Tensor
    b: torch.Tensor
    scaling: float
    p: float  # dropout, 0 outside training

    def mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """The flat positions of x that dropout drops; None without dropout."""
        return drop_positions(x.numel(), self.p, x.device) if self.p > 0 else None

    def forward(self, x: torch.Tensor, drop: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(base(x) + LoRA(dropout(x)), z = dropout(x) @ A.T) for a 2-d x."""
        out = F.linear(x, self.weight, self.bias)
        # z carries dropout's 1 / (1 - p); B.T carries `scaling` (both small: rank columns)
        z = F.linear(_zeroed(x, drop).to(self.a.dtype), self.a).mul_(1 / (1 - self.p))
        if out.dtype == z.dtype:
            out.addmm_(z, self.b.T, alpha=self.scaling)
        else:  # PEFT adds in the adapter's dtype and casts back
            out = (out.to(z.dtype) + (z @ self.b.T) * self.scaling).to(out.dtype)
        return out, z

    def backward(
        self, grad: torch.Tensor, x: torch.Tensor, drop: torch.Tensor | None, z: torch.Tensor, input_grad: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(d/dx or None, d/dA, d/dB) from d/d(output), all 2-d."""
        grad_lora = grad.to(self.a.dtype)
        grad_b = (grad_lora.T @ z).mul_(self.scaling)
        grad_z = (grad_lora @ self.b).mul_(self.scaling / (1 - self.p))  # d loss / d (dropped x @ A.T)
        grad_a = grad_z.T @ _zeroed(x, drop).to(self.a.dtype)
        if not input_grad:
            return None, grad_a, grad_b
        grad_x = grad_z @ self.a
        if drop is not None:
            grad_x.view(-1).index_fill_(0, drop, 0.0)
        if grad_x.dtype == self.weight.dtype:
            grad_x.addmm_(grad, self.weight)
        else:
            grad_x = grad @ self.weight + grad_x.to(self.weight.dtype)
        return grad_x, grad_a, grad_b


def _lora_parts(module) -> _Lora | None:
    """A PEFT LoRA Linear's tensors when its forward is the plain case (one active vanilla adapter, no LoRA bias,
    not merged or disabled); None otherwise."""
    active = [name for name in module.active_adapters if name in module.lora_A]
    if module.disable_adapters or module.merged or len(active) != 1:
        return None
    name = active[0]
    if name in module.lora_variant or module.lora_B[name].bias is not None:
        return None
    dropout = module.lora_dropout[name]
    p = dropout.p if isinstance(dropout, torch.nn.Dropout) and module.training else 0.0
    base, a, b = module.base_layer, module.lora_A[name].weight, module.lora_B[name].weight
    return _Lora(base.weight, base.bias, a, b, module.scaling[name], p)


def _saved(t: torch.Tensor | None) -> torch.Tensor:
    return t if t is not None else torch.empty(0)


def _unsaved(t: torch.Tensor) -> torch.Tensor | None:
    return t if t.numel() else None


class _LoraLinear(torch.autograd.Function):
    """base(x) + (dropout(x) @ A.T) @ B.T * scaling, with frozen base weight and bias."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, p: float):
        lora = _Lora(weight, bias, lora_a, lora_b, scaling, p)
        x2 = x.reshape(-1, x.shape[-1])
        drop = lora.mask(x2)
        out, z = lora.forward(x2, drop)
        ctx.save_for_backward(x2, _saved(drop), z, weight, lora_a, lora_b)
        ctx.lora, ctx.shape = (scaling, p), x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, drop, z, weight, lora_a, lora_b = ctx.saved_tensors
        lora = _Lora(weight, None, lora_a, lora_b, *ctx.lora)
        grad2 = grad.reshape(-1, grad.shape[-1])
        grad_x, grad_a, grad_b = lora.backward(grad2, x2, _unsaved(drop), z, ctx.needs_input_grad[0])
        grad_x = grad_x.view(ctx.shape) if grad_x is not None else None
        return grad_x, None, None, grad_a, grad_b, None, None


def _activation(act_fn) -> str | None:
    """'gelu_tanh', 'gelu' or 'silu' for the activation modules transformers' gated MLPs use; None for others."""
    from transformers import activations

    if isinstance(act_fn, (torch.nn.SiLU, getattr(activations, "SiLUActivation", torch.nn.SiLU))):
        return "silu"
    act = getattr(act_fn, "act", None)
    if isinstance(act_fn, activations.GELUTanh) and isinstance(act, functools.partial) and act.func is F.gelu:
        return "gelu_tanh" if act.keywords == {"approximate": "tanh"} else None
    if isinstance(act_fn, activations.GELUActivation) and act is F.gelu:
        return "gelu"
    return None


def _act_forward(kind: str, x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) if kind == "silu" else F.gelu(x, approximate="tanh" if kind == "gelu_tanh" else "none")


def _act_backward(kind: str, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if kind == "silu":
        return torch.ops.aten.silu_backward(grad, x)
    return torch.ops.aten.gelu_backward(grad, x, approximate="tanh" if kind == "gelu_tanh" else "none")


class _LoraMLP(torch.autograd.Function):
    """down(act(gate(x)) * up(x)) with three LoRA layers; keeps x, gate(x), up(x) and recomputes the rest."""

    @staticmethod
    def forward(ctx, x, act: str, gate: _Lora, up: _Lora, down: _Lora, *adapters):
        x2 = x.reshape(-1, x.shape[-1])
        drops = [gate.mask(x2), up.mask(x2)]
        g, z_gate = gate.forward(x2, drops[0])
        u, z_up = up.forward(x2, drops[1])
        product = _act_forward(act, g).mul_(u)
        drops.append(down.mask(product))
        out, z_down = down.forward(product, drops[2])
        ctx.save_for_backward(x2, g, u, z_gate, z_up, z_down, *(_saved(d) for d in drops))
        ctx.layers, ctx.act, ctx.shape = (gate, up, down), act, x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, g, u, z_gate, z_up, z_down, *drops = ctx.saved_tensors
        drop_gate, drop_up, drop_down = (_unsaved(d) for d in drops)
        gate, up, down = ctx.layers
        activated = _act_forward(ctx.act, g)
        product = activated * u
        grad2 = grad.reshape(-1, grad.shape[-1])
        grad_product, grad_a_down, grad_b_down = down.backward(grad2, product, drop_down, z_down, True)
        del product
        grad_u = grad_product * activated
        grad_g = _act_backward(ctx.act, grad_product.mul_(u), g)
        input_grad = ctx.needs_input_grad[0]
        grad_x, grad_a_gate, grad_b_gate = gate.backward(grad_g, x2, drop_gate, z_gate, input_grad)
        grad_x_up, grad_a_up, grad_b_up = up.backward(grad_u, x2, drop_up, z_up, input_grad)
        if grad_x is not None:
            grad_x = grad_x.add_(grad_x_up).view(ctx.shape)
        return grad_x, None, None, None, None, grad_a_gate, grad_b_gate, grad_a_up, grad_b_up, grad_a_down, grad_b_down


def _fused_linear_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """A PEFT LoRA Linear's forward through _LoraLinear when it is the plain case; PEFT's own forward otherwise."""
    lora = None if args or kwargs else _lora_parts(self)
    if lora is None:
        return self._peft_forward(x, *args, **kwargs)
    return _LoraLinear.apply(x, lora.weight, lora.bias, lora.a, lora.b, lora.scaling, lora.p)


def _fused_mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    """A gated MLP's forward through _LoraMLP when its three projections are plain LoRA layers."""
    layers = [_lora_parts(m) for m in (self.gate_proj, self.up_proj, self.down_proj)]
    if any(layer is None for layer in layers):
        return self._unfused_forward(x)
    adapters = [t for layer in layers for t in (layer.a, layer.b)]  # inputs, so autograd hands them gradients
    return _LoraMLP.apply(x, self._fused_activation, *layers, *adapters)


def use_fused_lora(model) -> int:
    """Route every LoRA Linear of a PEFT model with a frozen nn.Linear base through the fused function, and every
    gated MLP made of three of them through the fused MLP; returns how many LoRA layers."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    fused = set()
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if not isinstance(module, LoraLinear) or type(base) is not torch.nn.Linear or base.weight.requires_grad:
            continue
        module._peft_forward = module.forward
        module.forward = types.MethodType(_fused_linear_forward, module)
        fused.add(module)
    for module in model.modules():
        projections = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
        act = _activation(getattr(module, "act_fn", None))
        if act is None or not all(p in fused for p in projections) or not _is_gated_mlp(module):
            continue
        module._unfused_forward, module._fused_activation = module.forward, act
        module.forward = types.MethodType(_fused_mlp_forward, module)
    return len(fused)


# transformers' MLPs whose forward is `down_proj(act_fn(gate_proj(x)) * up_proj(x))`, recognised by type: any
# other MLP keeps its own forward. tests/train/test_lora_linear.py builds each one and checks that its own forward
# is that sum, so a transformers release that changes one fails there, not silently slower here.
GATED_MLPS = {
    ("transformers.models.gemma.modeling_gemma", "GemmaMLP"),
    ("transformers.models.gemma2.modeling_gemma2", "Gemma2MLP"),
    ("transformers.models.gemma3.modeling_gemma3", "Gemma3MLP"),
    ("transformers.models.granite.modeling_granite", "GraniteMLP"),
    ("transformers.models.llama.modeling_llama", "LlamaMLP"),
    ("transformers.models.mistral.modeling_mistral", "MistralMLP"),
    ("transformers.models.olmo2.modeling_olmo2", "Olmo2MLP"),
    ("transformers.models.qwen2.modeling_qwen2", "Qwen2MLP"),
    ("transformers.models.qwen3.modeling_qwen3", "Qwen3MLP"),
    ("transformers.models.smollm3.modeling_smollm3", "SmolLM3MLP"),
}


def _is_gated_mlp(module) -> bool:
    return (type(module).__module__, type(module).__name__) in GATED_MLPS
