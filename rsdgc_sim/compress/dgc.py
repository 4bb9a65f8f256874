"""``dgc``: Deep Gradient Compression (Lin, Han, Mao, Wang, Dally; ICLR 2018), as its
reference code does it.

Per tensor, on each worker:

1. optional local gradient clipping: ``g <- g * min(1, clip_norm / ||g||_2)``;
2. momentum correction: ``u <- m * u + g``; ``v <- v + u`` (Nesterov:
   ``u <- m * (u + g)``; ``v <- v + u + g``);
3. selection of the k = density * numel largest ``|v|``, by default with the sampled
   threshold (estimated on ``sample_ratio`` of the elements, payload capped at k);
4. the selected ``v`` values are sent and zeroed in ``v`` (the residual); momentum factor
   masking zeroes them in ``u`` too;
5. warm-up: the density follows an exponential schedule over ``warmup_iters`` iterations
   (``warmup="dgc"`` gives the published 0.25, 0.0625, 0.015625, 0.004, 0.001).

The receiving side applies the aggregated update with **plain SGD** (no optimizer momentum):
momentum has already been applied here.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import COMPRESSORS, Sparsifier, check_all_finite, check_same
from .memory import CompressorState, state_dtype
from .params import DGCParams
from .payload import Payload
from .schedule import density_at, warmup_stages
from .select import k_for, select


@COMPRESSORS.register("dgc")
class DGC(Sparsifier):
    """Deep Gradient Compression: momentum correction, momentum factor masking, local
    gradient clipping, sampled threshold with the payload capped at k, density warm-up."""

    name = "dgc"
    Params = DGCParams

    @property
    def applies_momentum(self) -> bool:
        """True unless ``momentum=0``: the optimizer must not add momentum again."""
        return self.p.momentum > 0

    def density_at(self, iteration: int) -> float:
        return density_at(iteration, self.p.density, self.p.warmup, self.p.warmup_iters)

    def warmup_stages(self) -> list[float]:
        return warmup_stages(self.p.warmup, self.p.density) if self.p.warmup_iters else []

    def compress_many(
        self, grads: Mapping[str, torch.Tensor], state: CompressorState
    ) -> dict[str, Payload]:
        check_all_finite(grads)
        density = self.density_at(state.iteration)
        return {n: self._dgc(n, g.detach(), state, density) for n, g in grads.items()}

    def _dgc(self, name: str, grad: torch.Tensor, state: CompressorState, density: float) -> Payload:
        p = self.p
        g = grad.to(state_dtype(grad.dtype))  # momentum and residual of half grads in fp32
        if p.clip_norm is not None and g.numel():
            norm = float(torch.linalg.vector_norm(g))
            if norm > p.clip_norm:
                g = g * (p.clip_norm / norm)
        u = state.momentum(name)
        if u is None:
            u = torch.zeros_like(g, memory_format=torch.contiguous_format)
            state.set_momentum(name, u)
        check_same(name, u, grad)
        if p.nesterov:
            u.add_(g).mul_(p.momentum)
            inc = u + g
        else:
            u.mul_(p.momentum).add_(g)
            inc = u
        v = state.residual(name)
        if self._send_dense_if_small(g):
            # small tensors: momentum applied here too, everything sent, nothing masked
            return self._send_dense(name, inc.clone() if v is None else v.add_(inc), grad, state)
        if v is None:
            v = inc.clone()
        else:
            v.add_(inc)
        k = k_for(v.numel(), density)
        gen = state.generator(v.device) if p.selector == "sampled" else None
        idx = select(p.selector, v.reshape(-1).abs(), k, gen, p.sample_ratio)
        if p.momentum_masking:
            u.view(-1).index_fill_(0, idx, 0)
        return self._send_sparse(name, v, idx, grad, state)
