"""``randomk``: k = density * numel elements chosen uniformly at random (without
replacement), with error feedback ("random-k with memory", Stich et al. 2018). Values are not
rescaled (rescaling by numel/k would break error feedback).

Two ways to draw (``shared_indices``):

* per rank (default): each rank draws from its own state's generator, so the (index, value)
  pairs of every rank must be all-gathered;
* shared, as GRACE's ``randomk`` does: the indices follow from ``index_seed``, the iteration
  and the tensor name only (:func:`shared_seed`), so every rank picks the same ones; only the
  values are sent and they are summed by allreduce (``Payload.needs_allgather`` is False).
"""

from __future__ import annotations

import hashlib

import torch

from .base import COMPRESSORS, Sparsifier
from .memory import CompressorState
from .params import RandomKParams
from .payload import Payload
from .select import k_for


def shared_seed(index_seed: int, iteration: int, name: str) -> int:
    """The seed of tensor ``name``'s shared draw at ``iteration``: a hash of the three (the
    same in every process, unlike Python's ``hash``), in ``[0, 2**63)``."""
    key = f"{int(index_seed)}/{int(iteration)}/{name}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


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
    choice comes from the state's generator (seeded per worker), or with ``shared_indices``
    from ``(index_seed, state.iteration, name)``, the same on every worker."""

    name = "randomk"
    Params = RandomKParams

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        a = self._compensate(name, grad, state)
        if self._send_dense_if_small(grad):
            return self._send_dense(name, a, grad, state)
        k = k_for(a.numel(), self.p.density)
        idx = random_indices(a.numel(), k, self._generator(name, a.device, state), a.device)
        return self._send_sparse(name, a, idx, grad, state)

    def _generator(self, name: str, device: torch.device, state: CompressorState):
        if not self.p.shared_indices:
            return state.generator(device)
        gen = torch.Generator(device=device)
        gen.manual_seed(shared_seed(self.p.index_seed, state.iteration, name))
        return gen
