"""Attention over packed rows one sample at a time, for training and eval on a CPU.

transformers runs a packed row through SDPA with a block-diagonal mask: every query scores every key of the row,
masked or not, and with a mask the kernel cannot skip the causal upper half either. Running each sample (a segment
whose position ids restart at 0) as its own causal SDPA call does only the unmasked work: for four ~120-token samples
in a 480-token row, about 2.3x less attention time, forward and backward, with the same result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "finch_packed_sdpa"


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, heads, length, head_dim]
    key: torch.Tensor,  # [batch, kv_heads, length, head_dim]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if position_ids is None or query.shape[2] != key.shape[2]:
        # not a whole packed row (decoding against a cache, or a model that does not pass position ids): the mask
        # transformers built for SDPA is right
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if key.shape[1] == 1:  # one KV head (Gemma 3 270M): a broadcast view, no copy to save for backward
        key, value = key.expand(-1, query.shape[1], -1, -1), value.expand(-1, query.shape[1], -1, -1)
    else:
        groups = query.shape[1] // key.shape[1]
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    position_ids = position_ids.expand(query.shape[0], -1)  # one row of ids may stand for every row of a batch
    rows = []
    for b in range(query.shape[0]):
        starts = (position_ids[b] == 0).nonzero().flatten().tolist() + [query.shape[2]]
        segments = []
        for start, end in zip(starts[:-1], starts[1:], strict=True):
            q, k, v = query[b : b + 1, :, start:end], key[b : b + 1, :, start:end], value[b : b + 1, :, start:end]
            n = end - start
            if sliding_window is not None and n > sliding_window:
                i = torch.arange(n, device=query.device)
                window = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < sliding_window)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=window, dropout_p=dropout, scale=scaling)
            else:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True)
            segments.append(out)
        rows.append(torch.cat(segments, dim=2) if len(segments) > 1 else segments[0])
    output = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return output.transpose(1, 2).contiguous(), None


def use_packed_attention(model) -> bool:
    """Switch a transformers model whose attention is SDPA to the per-sample version; False if it is not SDPA."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if model.config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(NAME, packed_sdpa_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the fallback above still gets SDPA's mask
    model.set_attn_implementation(NAME)
    return True
