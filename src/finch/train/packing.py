"""Packing: several samples share a row, each with its own position ids starting at 0.

transformers builds a block-diagonal causal mask from position ids that restart (when no attention mask is
passed), so packed samples never attend to each other; tests check a packed row's logits equal separate runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finch.train.data import IGNORE, Sample


@dataclass
class Batch:
    input_ids: torch.Tensor  # [rows, length]
    labels: torch.Tensor  # [rows, length], unshifted: labels[t] is the target of the token at t
    position_ids: torch.Tensor  # [rows, length], restarting at 0 for every sample (and for the padding tail)
    real: torch.Tensor  # [rows, length], False on padding

    @property
    def n_labels(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())

    @property
    def n_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.real.sum())


def pack(samples: list[Sample], max_seq_len: int) -> list[list[Sample]]:
    """Greedy first-fit in the given order: a row takes samples until the next one would not fit."""
    rows: list[list[Sample]] = []
    current: list[Sample] = []
    used = 0
    for sample in samples:
        if current and used + len(sample.input_ids) > max_seq_len:
            rows.append(current)
            current, used = [], 0
        current.append(sample)
        used += len(sample.input_ids)
    if current:
        rows.append(current)
    return rows


def pack_fullest(samples: list[Sample], max_tokens: int) -> list[list[Sample]]:
    """First-fit decreasing: each sample, longest first, joins the first row it fits in, so rows come out nearly
    full and there are few of them (fewer, larger forward passes); a sample longer than `max_tokens` rows alone."""
    rows: list[list[Sample]] = []
    used: list[int] = []
    for sample in sorted(samples, key=lambda s: len(s.input_ids), reverse=True):
        n = len(sample.input_ids)
        at = next((r for r, u in enumerate(used) if u + n <= max_tokens), None)
        if at is None:
            rows.append([sample])
            used.append(n)
        else:
            rows[at].append(sample)
            used[at] += n
    return rows


def collate(rows: list[list[Sample]], pad_id: int) -> Batch:
    """Rows of packed samples into tensors, padded to the longest row; padding is its own unlabelled segment."""
    length = max(sum(len(s.input_ids) for s in row) for row in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    real = torch.zeros((len(rows), length), dtype=torch.bool)
    for r, row in enumerate(rows):
        at = 0
        for sample in row:
            n = len(sample.input_ids)
            input_ids[r, at : at + n] = torch.tensor(sample.input_ids)
            # A sample's first label can never be predicted (nothing before it in its segment): drop it, so the
            # shifted loss never crosses into the previous sample.
            labels[r, at + 1 : at + n] = torch.tensor(sample.labels[1:])
            position_ids[r, at : at + n] = torch.arange(n)
            real[r, at : at + n] = True
            at += n
        position_ids[r, at:] = torch.arange(length - at)
    return Batch(input_ids, labels, position_ids, real)
