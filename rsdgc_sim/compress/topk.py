"""``topk``: the k = density * numel elements of largest magnitude (exact ``torch.topk``),
with error feedback (Stich et al. 2018; GRACE's ``topk``)."""

from __future__ import annotations

import torch

from .base import COMPRESSORS, Sparsifier
from .memory import CompressorState
from .params import SparsifierParams
from .payload import Payload
from .select import exact_topk, k_for


@COMPRESSORS.register("topk")
class TopK(Sparsifier):
    """Exact top-k by magnitude of ``a = grad + residual``; the rest stays in the residual."""

    name = "topk"
    Params = SparsifierParams

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        a = self._compensate(name, grad, state)
        if self._send_dense_if_small(grad):
            return self._send_dense(name, a, grad, state)
        k = k_for(a.numel(), self.p.density)
        idx = exact_topk(a.reshape(-1).abs(), k)
        return self._send_sparse(name, a, idx, grad, state)
