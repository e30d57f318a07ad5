"""The processes of one training run, as the loop sees them: which one it is, how many there are, and the sums it
needs across them (gloo on CPU, NCCL on CUDA). One process (SINGLE) needs no torch.distributed at all."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The process that writes the run directory and reports progress."""
        return self.rank == 0

    def sum(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor[0])

    def sum_gradients(self, params) -> None:
        """All processes' gradients added together, in one flat all-reduce."""
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        at = 0
        for g in grads:
            g.copy_(flat[at : at + g.numel()].view_as(g))
            at += g.numel()


SINGLE = ProcessGroup()
