"""``randomk``: k = density * numel elements chosen uniformly at random (without
replacement), with error feedback ("random-k with memory", Stich et al. 2018). Values are not
rescaled (rescaling by numel/k would break error feedback)."""

from __future__ import annotations

import torch

from .base import COMPRESSORS, Sparsifier
from .memory import CompressorState
from .payload import Payload
from .select import k_for


def random_indices(n: int, k: int, generator: torch.Generator, device) -> torch.Tensor:
    """``k`` distinct indices in ``[0, n)``, every k-subset equally likely.

    Cheaper than ``randperm(n)[:k]`` for k << n: draw with replacement (a little more than k),
    drop duplicates, shuffle the survivors and keep k (exchangeability keeps it uniform)."""
    if k >= n:
        return torch.arange(n, device=device)
    if 4 * k >= n:
        return torch.randperm(n, generator=generator, device=device)[:k]
    got = torch.empty(0, dtype=torch.long, device=device)
    while got.numel() < k:
        draw = torch.randint(0, n, (int(1.1 * k) + 16,), generator=generator, device=device)
        got = torch.unique(torch.cat([got, draw]))
    perm = torch.randperm(got.numel(), generator=generator, device=device)[:k]
    return got[perm]


@COMPRESSORS.register("randomk")
class RandomK(Sparsifier):
    """k random elements of ``a = grad + residual``; the rest stays in the residual. The
    choice comes from the state's generator (seeded per worker)."""

    name = "randomk"

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        a = self._compensate(name, grad, state)
        if self._send_dense_if_small(grad):
            return self._send_dense(name, a, grad, state)
        k = k_for(a.numel(), self.p.density)
        idx = random_indices(a.numel(), k, state.generator(a.device), a.device)
        return self._send_sparse(name, a, idx, grad, state)
