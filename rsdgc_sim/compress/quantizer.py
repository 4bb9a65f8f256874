"""What the quantizers (``qsgd``, ``terngrad``, ``efsignsgd``) share: per tensor one float32
scale and one bit-packed code per element (:class:`~rsdgc_sim.compress.payload.QuantizedPayload`),
every tensor quantized (1-D ones included), optional error feedback, and the random
numbers of stochastic rounding drawn from the worker's
:class:`~rsdgc_sim.compress.memory.CompressorState` generator (one uniform draw per element,
in the compute dtype, per call).

Half-precision gradients are quantized in float32 (their draws are float32 too); with error
feedback the residual is float32 and holds ``a - decompress(payload)``, the decompressed
values taken in the gradient's dtype, so that ``decompress(payload) + residual_after ==
grad + residual_before`` up to float rounding.

The scale goes on the wire as float32 and the quantization uses that rounded scale, so the
decoded values are unbiased with respect to what is sent (a float64 gradient whose norm
rounds down in float32 can only see its largest level clipped to ``levels``).
"""

from __future__ import annotations

import torch

from .base import Compressor, check_same
from .bitpack import pack
from .memory import CompressorState, state_dtype
from .payload import Payload, dequantize, quantized_payload


class Quantizer(Compressor):
    """Base of the bit-packed quantizers: subclasses give :attr:`levels`, :attr:`bits`,
    :meth:`_scale` and :meth:`_codes`."""

    sparse = False

    @property
    def levels(self) -> int:
        """The denominator of the magnitudes: values are ``scale / levels * q``."""
        return 1

    @property
    def bits(self) -> int:
        """Bits per element on the wire."""
        raise NotImplementedError

    @property
    def error_feedback(self) -> bool:
        return bool(self.p.error_feedback)

    def _scale(self, a: torch.Tensor) -> torch.Tensor:
        """The tensor's scale (0-d, in ``a``'s dtype) from the flat values ``a``
        (non-empty)."""
        raise NotImplementedError

    def _codes(self, a: torch.Tensor, scale: torch.Tensor, state: CompressorState) -> torch.Tensor:
        """The codes (uint8, int32 past 8 bits) of the flat values ``a`` given the scale
        as sent (float32, taken to ``a``'s dtype)."""
        raise NotImplementedError

    def _prepare(self, a: torch.Tensor) -> torch.Tensor:
        """The values quantized, from the flat compensated gradient (clipping; what it
        cuts off stays in the residual with error feedback)."""
        return a

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        dtype = state_dtype(grad.dtype)
        a = grad.reshape(-1)
        if self.error_feedback:
            r = state.residual(name)
            if r is not None:
                check_same(name, r, grad)
                a = r.reshape(-1) + a
        raw = a.to(dtype)
        a = self._prepare(raw)
        if a.numel():
            scale = self._scale(a).to(torch.float32)
        else:
            scale = torch.zeros((), dtype=torch.float32, device=a.device)
        codes = self._codes(a, scale.to(dtype), state)
        payload = quantized_payload(name, pack(codes, self.bits), scale, self.levels, self.bits,
                                    grad)
        if self.error_feedback:
            sent = dequantize(codes, scale, self.levels, self.bits, dtype).to(grad.dtype)
            state.set_residual(name, (raw - sent.to(dtype)).view(grad.shape))
        return payload

    def _signed_codes(self, a: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """``level << 1 | negative`` from float levels in ``0..levels`` (the sign bit only
        where the level is not 0)."""
        lvl = level.to(torch.uint8 if self.bits <= 8 else torch.int32)
        neg = a < 0
        neg &= lvl > 0
        lvl <<= 1
        lvl |= neg
        return lvl

    @staticmethod
    def _uniform(a: torch.Tensor, state: CompressorState) -> torch.Tensor:
        """One uniform draw in [0, 1) per element, in ``a``'s dtype, from the state's
        generator on ``a``'s device."""
        return torch.rand(a.numel(), generator=state.generator(a.device), dtype=a.dtype,
                          device=a.device)
