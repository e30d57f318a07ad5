"""Packed samples do not see each other, and the chunked head loss is the full-logits loss, values and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from finch.train.data import IGNORE, Sample, chat_renderer, tokenize_conversation
from finch.train.loop import causal_lm_parts
from finch.train.loss import chunked_loss_sum, naive_loss_sum
from finch.train.packed_attention import packed_sdpa_attention, use_packed_attention
from finch.train.packing import collate, pack, pack_fullest
from tests.train.datasets import chat_rows


@pytest.fixture(params=["gemma", "llama"])
def model_and_samples(request, tiny_gemma3_dir, tiny_llama_dir):
    folder = tiny_gemma3_dir if request.param == "gemma" else tiny_llama_dir
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    render = chat_renderer(tokenizer, model.config.model_type)
    samples = [tokenize_conversation(tokenizer, render, row["messages"]) for row in chat_rows(6)]
    return model, samples


def test_pack_fills_rows_in_order_without_splitting_samples(model_and_samples):
    _, samples = model_and_samples
    longest = max(len(s.input_ids) for s in samples)
    rows = pack(samples, longest * 2)
    assert [s for row in rows for s in row] == samples
    assert all(sum(len(s.input_ids) for s in row) <= longest * 2 for row in rows)
    assert len(rows) < len(samples)


def test_pack_fullest_fills_rows_longest_first():
    lengths = [30, 70, 20, 50, 90, 40]
    samples = [Sample(list(range(n)), list(range(n))) for n in lengths]
    rows = pack_fullest(samples, 100)
    assert sorted(len(s.input_ids) for row in rows for s in row) == sorted(lengths)  # every sample, once
    assert all(sum(len(s.input_ids) for s in row) <= 100 for row in rows)
    assert [[len(s.input_ids) for s in row] for row in rows] == [[90], [70, 30], [50, 40], [20]]
    assert [[len(s.input_ids) for s in row] for row in pack_fullest(samples[4:5], 60)] == [[90]]  # too long: alone


def test_per_sample_attention_equals_sdpa_with_the_packed_mask(model_and_samples):
    """finch's per-sample attention gives the hidden states and gradients of SDPA over the block-diagonal mask,
    sliding-window layers included (the tiny Gemma's window of 8 is shorter than its samples)."""
    model, samples = model_and_samples
    batch = collate([samples[:3], samples[3:5]], pad_id=0)
    assert max(len(s.input_ids) for s in samples) > 8

    def run():
        model.zero_grad(set_to_none=True)
        inputs = {"input_ids": batch.input_ids, "position_ids": batch.position_ids, "use_cache": False}
        hidden = model.get_decoder()(**inputs).last_hidden_state
        (hidden * batch.real[..., None]).square().sum().backward()
        return hidden.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    hidden_sdpa, grads_sdpa = run()
    assert use_packed_attention(model)
    hidden_packed, grads_packed = run()
    real = batch.real
    torch.testing.assert_close(hidden_packed[real], hidden_sdpa[real], atol=1e-5, rtol=1e-4)
    assert grads_packed.keys() == grads_sdpa.keys() and any("q_proj" in n for n in grads_sdpa)
    for name in grads_sdpa:
        torch.testing.assert_close(grads_packed[name], grads_sdpa[name], atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_per_sample_attention_with_one_or_more_kv_heads(kv_heads):
    """The function itself against SDPA over the block-diagonal mask, including the broadcast single KV head."""
    torch.manual_seed(0)
    lengths = [5, 9, 3]
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    q = torch.randn(1, 4, sum(lengths), 8, requires_grad=True)
    k, v = (torch.randn(1, kv_heads, sum(lengths), 8, requires_grad=True) for _ in range(2))
    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    causal = torch.arange(sum(lengths))[:, None] >= torch.arange(sum(lengths))[None, :]
    mask = (segment[:, None] == segment[None, :]) & causal
    module = torch.nn.Module()
    packed, _ = packed_sdpa_attention(module, q, k, v, None, scaling=0.3, position_ids=position_ids)
    reference = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(4 // kv_heads, 1), v.repeat_interleave(4 // kv_heads, 1), attn_mask=mask, scale=0.3
    ).transpose(1, 2)
    torch.testing.assert_close(packed, reference)
    grads = torch.autograd.grad(packed.square().sum(), (q, k, v))
    expected = torch.autograd.grad(reference.square().sum(), (q, k, v))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_packed_rows_match_separate_runs(model_and_samples):
    """Logits of each sample inside a packed, padded batch equal the logits of that sample run on its own."""
    model, samples = model_and_samples
    rows = [samples[:3], samples[3:4]]  # the second row is padded to the first's length
    batch = collate(rows, pad_id=0)
    assert batch.n_tokens == sum(len(s.input_ids) for s in samples[:4])
    with torch.no_grad():
        packed = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        for r, row in enumerate(rows):
            at = 0
            for sample in row:
                n = len(sample.input_ids)
                alone = model(input_ids=torch.tensor([sample.input_ids])).logits[0]
                torch.testing.assert_close(packed[r, at : at + n], alone, atol=1e-4, rtol=1e-4)
                at += n
    # Padding and each sample's first token carry no label, so no loss crosses a sample boundary.
    assert (batch.labels[~batch.real] == IGNORE).all()
    starts = torch.nonzero(batch.position_ids == 0)
    assert all(batch.labels[r, t] == IGNORE for r, t in starts.tolist())


def test_attention_really_crosses_without_the_position_reset(model_and_samples):
    """The check above can fail: without restarting positions the later samples' logits change."""
    model, samples = model_and_samples
    batch = collate([samples[:2]], pad_id=0)
    n0, n1 = (len(s.input_ids) for s in samples[:2])
    with torch.no_grad():
        joined = model(input_ids=batch.input_ids, use_cache=False).logits[0, n0 : n0 + n1]
        alone = model(input_ids=torch.tensor([samples[1].input_ids])).logits[0]
    assert not torch.allclose(joined, alone, atol=1e-3)


@pytest.mark.parametrize("head_trains", [True, False], ids=["head-trains", "head-frozen"])
@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("chunk, vocab_block", [(1, 2048), (7, 150), (4096, 64), (4096, 2048)])
def test_chunked_loss_equals_full_logits_loss(model_and_samples, softcap, chunk, vocab_block, head_trains):
    model, samples = model_and_samples
    batch = collate(pack(samples, 96), pad_id=0)
    model.config.final_logit_softcapping = softcap

    def run(chunked: bool):
        model.zero_grad(set_to_none=True)
        decoder, head, cap = causal_lm_parts(model)
        head.requires_grad_(head_trains)
        if chunked:
            hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False)[0]
            loss, n = chunked_loss_sum(hidden, batch.labels, head, cap, chunk, vocab_block)
        elif softcap is None:  # the model's own forward: full logits
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
            loss, n = naive_loss_sum(logits, batch.labels)
        else:  # not every architecture soft-caps in its forward: cap full logits by hand
            hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False)[0]
            logits = softcap * torch.tanh(hidden @ head.T / softcap)
            loss, n = naive_loss_sum(logits, batch.labels)
        (loss / n).backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        return loss.item(), n, grads

    try:
        loss_c, n_c, grads_c = run(True)
        loss_n, n_n, grads_n = run(False)
    finally:
        model.config.final_logit_softcapping = None
        causal_lm_parts(model)[1].requires_grad_(True)
    assert n_c == n_n == batch.n_labels > 0
    assert loss_c == pytest.approx(loss_n, rel=1e-5)
    assert grads_c.keys() == grads_n.keys() and len(grads_c) > 5
    for name in grads_n:
        torch.testing.assert_close(grads_c[name], grads_n[name], atol=1e-5, rtol=1e-4, msg=name)


def test_no_labels_gives_zero_loss():
    hidden = torch.randn(1, 5, 4, requires_grad=True)
    loss, n = chunked_loss_sum(hidden, torch.full((1, 5), IGNORE), torch.randn(10, 4))
    assert n == 0 and loss.item() == 0.0


def test_bf16_loss_of_a_near_certain_token_is_not_negative():
    """In bf16 the scan's logits are rounded to bf16; a target logit left in fp32 beside them made the loss of a token
    the model is sure of negative (-1.14 summed over these 39, where full logits give 0)."""
    torch.manual_seed(0)
    weight = torch.randn(3000, 64).to(torch.bfloat16)
    targets = torch.randint(0, 3000, (40,))
    hidden = (weight[targets].float() * 2.0 + 0.05 * torch.randn(40, 64)).to(torch.bfloat16)[None]
    labels = torch.cat([torch.tensor([IGNORE]), targets[:-1]])[None]  # position t predicts labels[t + 1]
    loss, n = chunked_loss_sum(hidden, labels, weight)
    reference, _ = naive_loss_sum(hidden @ weight.T, labels)
    assert n == 39 and float(loss) >= 0.0
    assert float(loss) == pytest.approx(float(reference), abs=1e-3)
