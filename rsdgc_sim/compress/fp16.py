"""``fp16``: dense half-precision values (2 bytes per element instead of 4)."""

from __future__ import annotations

import torch

from .base import COMPRESSORS, Compressor
from .memory import CompressorState, state_dtype
from .params import FP16Params
from .payload import Payload, dense_payload

#: largest finite float16
FP16_MAX = 65504.0


@COMPRESSORS.register("fp16")
class FP16(Compressor):
    """Cast to float16 (values beyond +-65504 are clamped, never sent as Inf), dense, sent by
    allreduce. With ``error_feedback`` the rounding error is carried to the next iteration."""

    name = "fp16"
    sparse = False
    Params = FP16Params

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        a = grad
        if self.p.error_feedback:  # the residual of a half-precision gradient in fp32
            r = state.residual(name)
            a = grad.to(state_dtype(grad.dtype)) if r is None else r + grad
        half = a.clamp(-FP16_MAX, FP16_MAX).to(torch.float16)
        if self.p.error_feedback:
            state.set_residual(name, a - half.to(a.dtype))
        return dense_payload(name, half, grad)
