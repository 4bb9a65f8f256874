"""``threshold``: every element whose magnitude reaches a fixed value (Strom 2015 style),
with error feedback; optionally capped at k = density * numel (the largest are kept)."""

from __future__ import annotations

import torch

from .base import COMPRESSORS, Sparsifier
from .memory import CompressorState
from .params import ThresholdParams
from .payload import Payload
from .select import exact_topk, k_for


@COMPRESSORS.register("threshold")
class Threshold(Sparsifier):
    """All elements with ``|a| >= threshold`` of ``a = grad + residual`` (threshold 0 sends
    everything); with ``density`` set, at most k of them, the largest."""

    name = "threshold"
    Params = ThresholdParams

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        a = self._compensate(name, grad, state)
        if self._send_dense_if_small(grad):
            return self._send_dense(name, a, grad, state)
        mag = a.reshape(-1).abs()
        idx = torch.nonzero(mag >= self.p.threshold).view(-1)
        if self.p.density is not None:
            k = k_for(a.numel(), self.p.density)
            if idx.numel() > k:
                idx = idx[exact_topk(mag[idx], k)]
        return self._send_sparse(name, a, idx, grad, state)
