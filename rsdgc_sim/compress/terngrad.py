"""``terngrad``: TernGrad (Wen et al. 2017), as GRACE's ``TernGradCompressor``: per tensor
the scale ``max|a|`` (float32 on the wire), per element a value in {-1, 0, +1}: ``sign(a)``
with probability ``|a| / scale`` (a uniform draw u in [0, 1) per element keeps it iff
``u * scale < |a|``), else 0. The element decodes to ``scale * value``, so
``E[decoded] = a``.

Payload: ``ceil(numel * 2 / 8) + 4`` bytes. Optional gradient clipping (``clip``, GRACE
clips at 2.5): the tensor is clamped to ``clip`` times its standard deviation first (then
the scale is the clipped maximum, and the quantization is unbiased for the clipped tensor
only).
"""

from __future__ import annotations

import torch

from .base import COMPRESSORS
from .memory import CompressorState
from .params import TernGradParams
from .quantizer import Quantizer


@COMPRESSORS.register("terngrad")
class TernGrad(Quantizer):
    """TernGrad (Wen et al. 2017): per tensor max|a|, per element -1, 0 or +1 (non-zero
    with probability |a| / max|a|: unbiased); 2 bits per element, all-gathered."""

    name = "terngrad"
    Params = TernGradParams

    @property
    def bits(self) -> int:
        return 2

    def _prepare(self, a: torch.Tensor) -> torch.Tensor:
        if self.p.clip is None or not a.numel():
            return a
        std = ((a - a.mean()) ** 2).mean().sqrt()  # GRACE: population std
        c = self.p.clip * std
        return torch.clamp(a, -c, c)

    def _scale(self, a: torch.Tensor) -> torch.Tensor:
        return a.abs().max()

    def _codes(self, a: torch.Tensor, scale: torch.Tensor, state: CompressorState) -> torch.Tensor:
        u = self._uniform(a, state)
        u *= scale
        keep = u < a.abs()
        return self._signed_codes(a, keep)
