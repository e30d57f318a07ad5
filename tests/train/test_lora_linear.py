"""The fused CPU LoRA layer: PEFT's outputs and gradients, nn.Dropout's distribution, seeded, in every LoRA layer."""

from __future__ import annotations

import importlib

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig

from finch.train import TrainConfig
from finch.train.loop import load_model
from finch.train.lora_linear import GATED_MLPS, _act_forward, _activation, _is_gated_mlp, drop_positions, use_fused_lora


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_dropout_drops_p_of_the_positions_independently(p):
    torch.manual_seed(0)
    n = 1000 * 999
    drop = drop_positions(n, p, torch.device("cpu"))
    assert drop.dtype == torch.int64 and bool((drop[1:] > drop[:-1]).all()) and drop[0] >= 0 and drop[-1] < n
    dropped = torch.zeros(n)
    dropped[drop] = 1.0
    assert abs(dropped.mean().item() - p) < 0.002
    for part in dropped.view(10, -1):  # as often at the end as at the start
        assert abs(part.mean().item() - p) < 0.006
    # independent trials: a drop is followed by another as often as any element is dropped
    assert abs(dropped[1:][dropped[:-1] == 1].mean().item() - p) < 0.006
    assert drop_positions(10, p, torch.device("cpu")).numel() <= 10


def as_mask(drop: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    mask = torch.zeros(torch.Size(shape).numel(), dtype=torch.bool)
    mask[drop] = True
    return mask.view(shape)


def lora_pair(dropout: float, bias: bool = True):
    """(PEFT's own LoRA layer, the same weights fused), with non-zero B so the LoRA path counts."""
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(48, 40, bias=bias))
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["0"]))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)
    fused = get_peft_model(
        torch.nn.Sequential(torch.nn.Linear(48, 40, bias=bias)),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["0"]),
    )
    fused.load_state_dict(peft.state_dict())
    assert use_fused_lora(fused) == 1
    return peft, fused


def grads_of(model, x):
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("bias", [True, False])
def test_without_dropout_outputs_and_gradients_equal_peft(bias):
    peft, fused = lora_pair(0.0, bias)
    x = torch.randn(2, 7, 48)
    out_p, gx_p, g_p = grads_of(peft, x)
    out_f, gx_f, g_f = grads_of(fused, x)
    torch.testing.assert_close(out_f, out_p)
    torch.testing.assert_close(gx_f, gx_p)
    assert g_f.keys() == g_p.keys() == {n for n, p in peft.named_parameters() if "lora_" in n}
    for name in g_p:
        torch.testing.assert_close(g_f[name], g_p[name], msg=name)


def test_with_dropout_it_is_peft_with_the_same_mask():
    p = 0.25
    peft, fused = lora_pair(p)
    x = torch.randn(2, 7, 48)
    torch.manual_seed(5)
    drop = as_mask(drop_positions(14 * 48, p, x.device), (2, 7, 48))
    peft.base_model.model[0].lora_dropout["default"] = _FixedMask(drop, p)
    out_p, gx_p, g_p = grads_of(peft, x)
    torch.manual_seed(5)
    out_f, gx_f, g_f = grads_of(fused, x)
    torch.testing.assert_close(out_f, out_p)
    torch.testing.assert_close(gx_f, gx_p)
    for name in g_p:
        torch.testing.assert_close(g_f[name], g_p[name], msg=name)
    torch.manual_seed(5)
    assert torch.equal(fused(x), out_f)  # seeded like nn.Dropout
    torch.manual_seed(6)
    assert not torch.equal(fused(x), out_f)
    fused.eval(), peft.eval()
    peft.base_model.model[0].lora_dropout["default"] = torch.nn.Identity()
    torch.testing.assert_close(fused(x), peft(x))  # no dropout in eval mode


class _TwoReaders(torch.nn.Module):
    """Two linear layers reading the same input, as q, k and v do."""

    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Linear(48, 40), torch.nn.Linear(48, 40)

    def forward(self, x):
        return self.first(x) + self.second(x)


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_layers_sharing_an_input_each_read_it_whole_and_leave_it_unchanged(strided):
    """One layer's dropout must not reach the other's input (q, k and v share theirs), whatever its strides."""
    p = 0.3
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=p, target_modules=["first", "second"])
    torch.manual_seed(0)
    peft = get_peft_model(_TwoReaders(), config)
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)
    fused = get_peft_model(_TwoReaders(), config)
    fused.load_state_dict(peft.state_dict())
    assert use_fused_lora(fused) == 2
    x = torch.randn(2, 14, 48)[:, ::2] if strided else torch.randn(2, 7, 48)
    torch.manual_seed(5)  # the fused layers draw in this order as they run
    for layer in (peft.base_model.model.first, peft.base_model.model.second):
        layer.lora_dropout["default"] = _FixedMask(as_mask(drop_positions(14 * 48, p, x.device), (2, 7, 48)), p)
    out_p, gx_p, g_p = grads_of(peft, x)
    x_before, x_fused = x.clone(), x.detach().requires_grad_(True)  # x itself: its storage, its strides
    torch.manual_seed(5)
    out_f = fused(x_fused)
    out_f.backward(torch.linspace(-1, 1, out_f.numel()).view(out_f.shape))
    gx_f, g_f = x_fused.grad, {n: p.grad for n, p in fused.named_parameters() if p.grad is not None}
    assert torch.equal(x, x_before) and x.is_contiguous() != strided
    torch.testing.assert_close(out_f, out_p)
    torch.testing.assert_close(gx_f, gx_p)
    assert g_f.keys() == g_p.keys() and len(g_p) == 4
    for name in g_p:
        torch.testing.assert_close(g_f[name], g_p[name], msg=name)


class _FixedMask(torch.nn.Module):
    def __init__(self, drop: torch.Tensor, p: float):
        super().__init__()
        self.drop, self.p = drop, p

    def forward(self, x):
        return torch.where(self.drop, 0.0, x) / (1 - self.p)


def test_an_input_without_gradient_still_trains_the_adapter():
    peft, fused = lora_pair(0.0)
    x = torch.randn(5, 48)
    fused(x).sum().backward()
    peft(x).sum().backward()
    for (name, a), (_, b) in zip(fused.named_parameters(), peft.named_parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_disabled_adapters_fall_back_to_the_base_layer():
    _, fused = lora_pair(0.1)
    x = torch.randn(3, 48)
    with fused.disable_adapter():
        torch.testing.assert_close(fused(x), fused.base_model.model[0].base_layer(x))


@pytest.mark.parametrize("arch", ["gemma3", "llama"])  # GELU-tanh and SiLU gated MLPs
def test_load_model_on_a_cpu_fuses_every_lora_layer_and_mlp_and_keeps_the_loss_and_gradients(arch, request, tmp_path):
    from peft.tuners.lora.layer import Linear

    hf_dir = request.getfixturevalue(f"tiny_{arch}_dir")
    config = TrainConfig(data=tmp_path, lora_dropout=0.0, seed=1)
    model = load_model(hf_dir, config, "float32", "cpu")
    plain = load_model(hf_dir, config, "float32", "cpu")
    for m in plain.modules():  # back to PEFT's and transformers' own forwards
        for name in ("forward", "_peft_forward", "_unfused_forward"):
            m.__dict__.pop(name, None)
    layers = [m for m in model.modules() if isinstance(m, Linear)]
    assert layers and all("_peft_forward" in m.__dict__ for m in layers)
    mlps = [m for m in model.modules() if "_unfused_forward" in m.__dict__]
    assert len(mlps) == model.config.num_hidden_layers
    for m in plain.modules():  # B starts at zero: make the adapters matter
        if isinstance(m, Linear):
            torch.nn.init.normal_(m.lora_B["default"].weight, std=0.1)
    model.load_state_dict(plain.state_dict())
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    losses = []
    for m in (model, plain):
        m.train()
        m.zero_grad(set_to_none=True)
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        losses.append((loss.item(), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}))
    assert losses[0][0] == pytest.approx(losses[1][0], rel=1e-5)
    assert losses[0][1].keys() == losses[1][1].keys() and losses[0][1]
    for name, grad in losses[1][1].items():
        torch.testing.assert_close(losses[0][1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_the_fused_mlp_with_dropout_is_the_fused_layers_with_the_same_masks(tiny_gemma3_dir, tmp_path):
    """The MLP function draws the gate, up and down masks in the order the separate fused layers would."""
    config = TrainConfig(data=tmp_path, lora_dropout=0.2, seed=1)
    model = load_model(tiny_gemma3_dir, config, "float32", "cpu")
    for m in model.modules():
        if "lora_B" in m._modules:
            torch.nn.init.normal_(m.lora_B["default"].weight, std=0.1)
    mlp = next(m for m in model.modules() if "_unfused_forward" in m.__dict__)
    mlp.train()
    x = torch.randn(2, 5, model.config.hidden_size)
    results = []
    for forward in (mlp.forward, mlp._unfused_forward):  # fused MLP; three fused layers
        mlp.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(11)
        out = forward(xi)
        out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
        results.append((out.detach(), xi.grad, {n: p.grad for n, p in mlp.named_parameters() if p.grad is not None}))
    (out_f, gx_f, g_f), (out_l, gx_l, g_l) = results
    torch.testing.assert_close(out_f, out_l)
    torch.testing.assert_close(gx_f, gx_l)
    assert g_f.keys() == g_l.keys() and len(g_f) == 6
    for name in g_l:
        torch.testing.assert_close(g_f[name], g_l[name], msg=name)


MLP_MODEL_TYPES = {
    "GemmaMLP": "gemma",
    "Gemma2MLP": "gemma2",
    "Gemma3MLP": "gemma3_text",
    "GraniteMLP": "granite",
    "LlamaMLP": "llama",
    "MistralMLP": "mistral",
    "Olmo2MLP": "olmo2",
    "Qwen2MLP": "qwen2",
    "Qwen3MLP": "qwen3",
    "SmolLM3MLP": "smollm3",
}


@pytest.mark.parametrize(("module_name", "class_name"), sorted(GATED_MLPS))
def test_every_mlp_fused_by_type_computes_what_the_fused_mlp_computes(module_name, class_name):
    """A transformers release that renames one of these MLPs or changes its forward fails here, loudly."""
    mlp_class = getattr(importlib.import_module(module_name), class_name)
    sizes = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1}
    mlp = mlp_class(AutoConfig.for_model(MLP_MODEL_TYPES[class_name], head_dim=8, **sizes))
    assert _is_gated_mlp(mlp)
    activation = _activation(mlp.act_fn)
    assert activation is not None, f"{class_name}: an activation the fused MLP does not know"
    x = torch.randn(3, 16)
    fused_maths = mlp.down_proj(_act_forward(activation, mlp.gate_proj(x)) * mlp.up_proj(x))
    torch.testing.assert_close(mlp(x), fused_maths)

    class Changed(mlp_class):  # a class finch does not know keeps its own forward
        def forward(self, x):
            return self.down_proj(self.up_proj(x))

    assert not _is_gated_mlp(Changed(mlp.config))
