"""``efsignsgd``: EF-signSGD (Karimireddy et al. 2019), as GRACE's ``EFSignSGDCompressor``
and ``EFSignSGDMemory``: per tensor the scale ``mean|a|`` of the error-compensated gradient
``a = grad + residual`` (float32 on the wire), per element its sign (0 counts as +), and the
new residual ``a - decompress(payload)``. The element decodes to ``+-mean|a|``.

Payload: ``ceil(numel / 8) + 4`` bytes. The ranks' decompressed payloads are averaged like
every other compressor's (GRACE sums them and divides by the learning rate: its residual is
kept on ``lr * grad``; with a constant learning rate the two are the same, since the scaled
sign is positively homogeneous, and here the optimizer applies the learning rate).
"""

from __future__ import annotations

import torch

from .base import COMPRESSORS
from .memory import CompressorState
from .params import EFSignSGDParams
from .quantizer import Quantizer


@COMPRESSORS.register("efsignsgd")
class EFSignSGD(Quantizer):
    """EF-signSGD (Karimireddy et al. 2019): per tensor mean|a|, per element the sign, with
    error feedback; 1 bit per element, all-gathered."""

    name = "efsignsgd"
    Params = EFSignSGDParams

    @property
    def bits(self) -> int:
        return 1

    def _scale(self, a: torch.Tensor) -> torch.Tensor:
        return a.abs().mean()

    def _codes(self, a: torch.Tensor, scale: torch.Tensor, state: CompressorState) -> torch.Tensor:
        return (a < 0).view(torch.uint8)
