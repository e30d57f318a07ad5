"""A frozen embedding stored in bf16 trains as the same fp32 model with its embedding rounded to bf16."""

import importlib

import pytest
import torch

from finch.train import TrainConfig
from finch.train.bf16_embedding import SCALED_EMBEDDINGS, _is_scaled_embedding, keep_embedding_in_bf16
from finch.train.data import IGNORE
from finch.train.loop import causal_lm_parts, load_model
from finch.train.loss import chunked_loss_sum


def lora_grads(model, ids, labels, vocab_block) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    decoder, head, softcap = causal_lm_parts(model)
    hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
    loss, n = chunked_loss_sum(hidden, labels, head, softcap, vocab_block=vocab_block)
    (loss / n).backward()
    return loss.item(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ["gemma3", "llama"])  # tied and scaled; untied and plain
def test_the_bf16_embedding_trains_as_the_rounded_fp32_model(arch, request, tmp_path):
    hf_dir = request.getfixturevalue(f"tiny_{arch}_dir")
    config = TrainConfig(data=tmp_path, lora_dropout=0.0, seed=1)
    stored, rounded = load_model(hf_dir, config, "float32", "cpu"), load_model(hf_dir, config, "float32", "cpu")
    for name, p in stored.named_parameters():  # B starts at zero: make the adapters matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    rounded.load_state_dict(stored.state_dict())
    for layer in (rounded.get_input_embeddings(), rounded.get_output_embeddings()):
        layer.weight.data = layer.weight.data.bfloat16().float()

    assert keep_embedding_in_bf16(stored)
    embedding, head = stored.get_input_embeddings(), stored.get_output_embeddings()
    assert embedding.weight.dtype == head.weight.dtype == torch.bfloat16
    assert (head.weight is embedding.weight) == stored.config.tie_word_embeddings
    ids = torch.randint(0, stored.config.vocab_size, (2, 14))
    labels = ids.clone()
    labels[:, :5] = IGNORE
    vocab_block = 256  # the tiny vocabulary's 640 rows: two full blocks and a partial one
    loss_stored, grads_stored = lora_grads(stored, ids, labels, vocab_block)
    loss_rounded, grads_rounded = lora_grads(rounded, ids, labels, vocab_block)
    assert loss_stored == pytest.approx(loss_rounded, rel=1e-6)
    assert grads_stored.keys() == grads_rounded.keys() and len(grads_stored) > 10
    for name, grad in grads_rounded.items():
        torch.testing.assert_close(grads_stored[name], grad, msg=name)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_a_bf16_head_gives_the_loss_and_gradient_of_its_fp32_copy(softcap):
    torch.manual_seed(0)
    hidden = torch.randn(1, 9, 16, requires_grad=True)
    head = torch.randn(300, 16).bfloat16()
    labels = torch.randint(0, 300, (1, 9))
    results = []
    for weight in (head, head.float()):
        hidden.grad = None
        loss, _ = chunked_loss_sum(hidden, labels, weight, softcap, vocab_block=128)
        loss.backward()
        results.append((loss.item(), hidden.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1])


def test_a_trainable_or_unknown_embedding_stays_as_it_is(tiny_gemma3_dir, tmp_path):
    full = load_model(tiny_gemma3_dir, TrainConfig(data=tmp_path, method="full"), "float32", "cpu")
    assert not keep_embedding_in_bf16(full) and full.get_input_embeddings().weight.dtype == torch.float32

    lora = load_model(tiny_gemma3_dir, TrainConfig(data=tmp_path), "float32", "cpu")
    embedding = lora.get_input_embeddings()
    embedding.__class__ = type("OtherEmbedding", (torch.nn.Embedding,), {})  # a forward this doesn't know
    assert not keep_embedding_in_bf16(lora) and embedding.weight.dtype == torch.float32


@pytest.mark.parametrize(("module_name", "class_name"), sorted(SCALED_EMBEDDINGS))
def test_every_scaled_embedding_known_by_type_scales_its_rows(module_name, class_name):
    """A transformers release that renames one of these embeddings or changes its forward fails here, loudly."""
    embedding_class = getattr(importlib.import_module(module_name), class_name)
    embedding = embedding_class(50, 8, padding_idx=0, embed_scale=8**0.5)
    assert _is_scaled_embedding(embedding)
    ids = torch.randint(0, 50, (2, 5))
    torch.testing.assert_close(embedding(ids), embedding.weight[ids] * 8**0.5)
