"""The maps recover what a hand-set model is known to do, and the attribution is Captum's gradient × activation."""

from __future__ import annotations

import numpy as np
import pytest

from finch.explain.trace import attention_modules, trace_answer
from tests.tiny_models import HIDDEN_SIZE, random_model, tiny_llama_config, train_llama3_tokenizer

CONSTANT_DIM, MARKER_DIM = 0, 1
LOWEST_ROPE_FREQUENCY = 7  # the last rotary pair of a 16-wide head turns ~1e-6 rad per position: no rotation here


def looks_at_one_token(marker: int):
    """A 2-layer Llama whose second layer attends, from every position after it, to the `marker` token only.

    Every embedding carries 1 in CONSTANT_DIM; only the marker's carries 1 in MARKER_DIM. Layer 1's queries read the
    constant and its keys the marker dimension (on the slowest rotary pair, so position does not matter): the score
    is ~280 for the marker and 0 for anything else. Layer 0 and both MLPs write nothing."""
    import torch

    tokenizer = train_llama3_tokenizer()
    model = random_model(tiny_llama_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id), seed=3)
    config = model.config
    head_dim = HIDDEN_SIZE // config.num_attention_heads
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        embeddings.normal_(0.0, 0.02)
        embeddings[:, CONSTANT_DIM] = 1.0
        embeddings[:, MARKER_DIM] = 0.0
        embeddings[marker, MARKER_DIM] = 1.0
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.zero_()
            layer.input_layernorm.weight.fill_(1.0)
        model.model.layers[0].self_attn.o_proj.weight.zero_()
        attn = model.model.layers[1].self_attn
        attn.q_proj.weight.zero_()
        attn.k_proj.weight.zero_()
        for head in range(config.num_attention_heads):
            attn.q_proj.weight[head * head_dim + LOWEST_ROPE_FREQUENCY, CONSTANT_DIM] = 5.0
        for group in range(config.num_key_value_heads):
            attn.k_proj.weight[group * head_dim + LOWEST_ROPE_FREQUENCY, MARKER_DIM] = 5.0
    model.set_attn_implementation("eager")
    return model.eval(), tokenizer


def test_the_hand_set_layer_is_found_in_attention_rollout_and_attribution():
    marker_position = 5
    ids = list(range(20, 32))  # 12 prompt tokens, none of them special
    marker = ids[marker_position]
    model, _ = looks_at_one_token(marker)
    answer = [40, 41, 42, 43]
    trace = trace_answer(model, ids + answer, prompt_len=len(ids))

    assert trace.attention.shape == (2, 4, len(answer), len(ids))
    # Layer 1: every head, for every answer position, puts (almost) all its weight on the marker.
    assert (trace.attention[1].argmax(-1) == marker_position).all()
    assert trace.attention[1, :, :, marker_position].min() > 0.99
    # Layer 0 keeps its seeded random q/k: it does not single the marker out.
    assert not (trace.attention[0].argmax(-1) == marker_position).all()
    # Rollout: half of layer 1's mixing goes to the marker, so it leads every row.
    assert (trace.rollout.argmax(-1) == marker_position).all()
    # Attribution: from answer token 1 on, the query position is an answer token, so the prompt reaches the logits
    # only through layer 1's attention — through the marker.
    assert (np.abs(trace.attribution[1:]).argmax(-1) == marker_position).all()
    others = np.delete(np.abs(trace.attribution[1:]), marker_position, axis=1)
    assert others.max() < 0.01 * np.abs(trace.attribution[1:, marker_position]).min()


def test_gradient_x_input_is_captum_layer_gradient_x_activation(tiny_llama_dir):
    captum = pytest.importorskip("captum.attr")
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    model.set_attn_implementation("eager")
    prompt, answer = [1, 50, 60, 70, 80, 90], [100, 110, 120]
    trace = trace_answer(model, prompt + answer, prompt_len=len(prompt))

    for j, token in enumerate(answer):
        prefix = torch.tensor([prompt + answer[:j]])

        def logprob(input_ids, token=token):
            return torch.log_softmax(model(input_ids=input_ids).logits[:, -1].float(), -1)[:, token]

        expected = captum.LayerGradientXActivation(logprob, model.get_input_embeddings()).attribute(prefix)
        np.testing.assert_allclose(trace.attribution[j], expected[0, : len(prompt)].sum(-1).detach().numpy(), atol=1e-5)
        assert trace.answer_logprobs[j] == pytest.approx(float(logprob(prefix)), abs=1e-5)


def test_attention_modules_are_found_through_a_peft_wrapper(tiny_llama_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert len(attention_modules(wrapped)) == model.config.num_hidden_layers
