"""``none``: no compression, the dense gradient (the baseline every speed-up is against)."""

from __future__ import annotations

import torch

from .base import COMPRESSORS, Compressor
from .memory import CompressorState
from .params import NoneParams
from .payload import Payload, dense_payload


@COMPRESSORS.register("none")
class NoCompression(Compressor):
    """Dense fp32 (or whatever dtype the gradient has): the payload is the gradient itself
    (no copy), sent by allreduce."""

    name = "none"
    sparse = False
    Params = NoneParams

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        return dense_payload(name, grad, grad)
