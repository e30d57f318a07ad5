"""The CPU LoRA dropout: nn.Dropout's distribution and gradient, seeded, and swapped into every LoRA layer."""

from __future__ import annotations

import pytest
import torch

from finch.train import TrainConfig
from finch.train.loop import load_model
from finch.train.lora_dropout import MaskDropout, keep_mask


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_the_mask_drops_p_of_the_elements_independently_of_position(p):
    torch.manual_seed(0)
    keep = keep_mask(torch.Size([1000, 999]), p, torch.device("cpu"))  # not a multiple of the 4 lanes per draw
    assert keep.dtype == torch.bool and keep.shape == (1000, 999)
    dropped = 1 - keep.float()
    assert abs(dropped.mean().item() - p) < 0.002
    # every lane of a 64-bit draw drops at the same rate: no lane is biased (a signed top lane would be)
    for lane in range(4):
        assert abs(dropped.flatten()[lane::4].mean().item() - p) < 0.004


def test_forward_scales_what_it_keeps_backward_passes_gradient_through_the_same_mask():
    dropout = MaskDropout(0.25)
    x = torch.randn(64, 48, requires_grad=True)
    torch.manual_seed(3)
    out = dropout(x)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.75)
    grad = torch.randn_like(out)
    out.backward(grad)
    assert torch.allclose(x.grad, torch.where(kept, grad / 0.75, 0.0))
    torch.manual_seed(3)
    assert torch.equal(dropout(x), out)  # seeded like nn.Dropout
    assert torch.equal(dropout.eval()(x), x)


def test_load_model_on_a_cpu_gives_every_lora_layer_the_mask_dropout(tiny_gemma3_dir, tmp_path):
    config = TrainConfig(data=tmp_path, lora_dropout=0.1)
    model = load_model(tiny_gemma3_dir, config, "float32", "cpu")
    dropouts = [m for name, m in model.named_modules() if name.endswith("lora_dropout.default")]
    assert dropouts and all(isinstance(m, MaskDropout) and m.p == 0.1 for m in dropouts)
    assert not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())
