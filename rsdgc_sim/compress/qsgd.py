"""``qsgd``: QSGD (Alistarh et al. 2017), as GRACE's ``QSGDCompressor``: per tensor the L2
norm ``||a||_2`` (float32 on the wire), per element a sign bit and a level in ``0..s``
chosen by unbiased stochastic rounding of ``s |a| / ||a||_2``: with ``l = floor(x)``, level
``l + 1`` with probability ``x - l``, else ``l``. The element decodes to
``||a||_2 / s * sign * level``, so ``E[decoded] = a``.

Payload: ``ceil(numel * (1 + ceil(log2(s + 1))) / 8) + 4`` bytes (6 bits per element at the
default s = 16). A level that rounding pushes past s (``s / ||a|| * |a|`` a hair above s for
a tensor of one non-zero element) is kept at s. A tensor whose norm is 0, or so small that
``s / ||a||`` overflows (below ~1e-37 in float32), is sent as zeros.
"""

from __future__ import annotations

import torch

from .base import COMPRESSORS
from .memory import CompressorState
from .params import QSGDParams
from .quantizer import Quantizer


@COMPRESSORS.register("qsgd")
class QSGD(Quantizer):
    """QSGD (Alistarh et al. 2017): per tensor the L2 norm, per element a sign bit and one
    of ``levels`` levels by unbiased stochastic rounding; bit-packed, all-gathered."""

    name = "qsgd"
    Params = QSGDParams

    @property
    def levels(self) -> int:
        return int(self.p.levels)

    @property
    def bits(self) -> int:
        return 1 + int(self.p.levels).bit_length()  # 1 + ceil(log2(s + 1))

    def _scale(self, a: torch.Tensor) -> torch.Tensor:
        return a.norm()

    def _codes(self, a: torch.Tensor, scale: torch.Tensor, state: CompressorState) -> torch.Tensor:
        s = self.levels
        mult = s / scale  # GRACE's order: s / norm * |a|
        mult = torch.where(torch.isinf(mult), torch.zeros_like(mult), mult)
        x = a.abs()
        x *= mult
        level = x.floor()
        x -= level  # the fraction: probability of the next level
        level += self._uniform(a, state) < x
        level.clamp_(max=s)
        return self._signed_codes(a, level)
