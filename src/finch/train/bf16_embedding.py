"""A frozen token embedding, and the output head tied to it, kept in bf16 while a model trains in fp32 on a CPU.

Gemma 3 270M's 262k x 640 embedding is 0.67 GB in fp32, 62% of the model. Under LoRA it is frozen and only read:
rows of it at the input, and blocks of it as the output head in the loss, which widens each block into an fp32
buffer that stays in cache (as fast as reading an fp32 head: half the bytes from memory). Storing it in bf16 frees
0.34 GB, which buys longer forward passes. The rows round to bf16 as they would in a bf16 model; everything they
meet computes in fp32.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


def keep_embedding_in_bf16(model) -> bool:
    """Store a frozen fp32 input embedding (and a tied or frozen output head) in bf16; the embedding still returns
    fp32. Whether it did: an embedding class whose forward it doesn't know stays as it is. Only the training loop's
    loss reads the head afterwards (`finch.train.loss`), so this is for a model that `train()` owns."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    embedding, head = inner.get_input_embeddings(), inner.get_output_embeddings()
    known = type(embedding) is torch.nn.Embedding or _is_scaled_embedding(embedding)
    if not known or embedding.weight.requires_grad or embedding.weight.dtype != torch.float32:
        return False
    tied = head is not None and head.weight is embedding.weight
    embedding.weight = torch.nn.Parameter(embedding.weight.detach().to(torch.bfloat16), requires_grad=False)
    if tied:
        head.weight = embedding.weight
    elif head is not None and not head.weight.requires_grad:
        head.weight = torch.nn.Parameter(head.weight.detach().to(torch.bfloat16), requires_grad=False)
    embedding.forward = types.MethodType(_widening_forward, embedding)
    return True


# transformers' scaled word embeddings (rows times `embed_scale`), recognised by type; tests/train/
# test_bf16_embedding.py checks each one's own forward against that product.
SCALED_EMBEDDINGS = {("transformers.models.gemma3.modeling_gemma3", "Gemma3TextScaledWordEmbedding")}


def _is_scaled_embedding(module) -> bool:
    return (type(module).__module__, type(module).__name__) in SCALED_EMBEDDINGS


def _widening_forward(self, input_ids: torch.Tensor) -> torch.Tensor:
    rows = F.embedding(
        input_ids, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
    ).float()
    scale = getattr(self, "embed_scale", None)
    return rows if scale is None else rows * scale.float()
