"""Bit packing of small unsigned integer codes: ``numel`` codes of ``bits`` bits each into
``ceil(numel * bits / 8)`` bytes, and back, with vectorised torch bit operations (no Python
loop over elements; CPU and CUDA alike).

The stream is little-endian, least significant bit first: code ``i`` occupies bits
``[i * bits, (i + 1) * bits)`` of the stream, its own least significant bit first, and bit
``j`` of the stream is bit ``j % 8`` of byte ``j // 8``. The bits past the last code in the
last byte are zero.

>>> import torch
>>> data = pack(torch.tensor([1, 2, 3], dtype=torch.uint8), 2)
>>> data.tolist(), unpack(data, 3, 2).tolist()   # 0b00_11_10_01
([57], [1, 2, 3])

Codes of up to 8 bits (every quantizer at its defaults: ``qsgd`` with up to 127 levels)
take the fast path: eight codes are one int64 word, one byte each, squeezed together by
three rounds of mask-and-shift (pairs of bytes, pairs of 16-bit lanes, the two 32-bit
halves) and cut to ``bits`` bytes; unpacking runs the rounds backwards. Wider codes (up to
:data:`MAX_BITS`) go through a matrix of single bits.
"""

from __future__ import annotations

import sys

import torch

from ..errors import ConfigError

#: the widest code :func:`pack` takes (``qsgd`` with up to 32,767 levels)
MAX_BITS = 16

if sys.byteorder != "little":  # pragma: no cover - every platform torch supports
    raise ImportError("rsdgc_sim.compress.bitpack assumes a little-endian machine")


def packed_bytes(numel: int, bits: int) -> int:
    """Bytes of ``numel`` packed codes of ``bits`` bits: ``ceil(numel * bits / 8)``."""
    return -(-int(numel) * int(bits) // 8)


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 it is stored as."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _lanes(pattern: int, width: int) -> int:
    """``pattern`` repeated in every ``width``-bit lane of a 64-bit word, as an int64."""
    return _signed(sum(pattern << (i * width) for i in range(64 // width)))


#: per round (lane width L of the halves, in bits): the mask of the low halves of every
#: 2L-bit lane, and of the high ones
_ROUNDS = {L: (_lanes((1 << L) - 1, 2 * L), _lanes(((1 << L) - 1) << L, 2 * L)) for L in (8, 16, 32)}


def _check(bits: int) -> None:
    if not 1 <= int(bits) <= MAX_BITS:
        raise ConfigError(f"codes of {bits} bits cannot be packed (1 to {MAX_BITS})")


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``codes`` (any integer dtype, every value in ``[0, 2**bits)``; not checked) packed
    into a new uint8 tensor of :func:`packed_bytes` bytes, on the codes' device."""
    _check(bits)
    flat = codes.reshape(-1)
    n = flat.numel()
    if bits > 8:
        return _pack_wide(flat, bits)
    groups = -(-n // 8)
    buf = torch.zeros(groups * 8, dtype=torch.uint8, device=flat.device)
    buf[:n] = flat
    if bits == 8:
        return buf[:n]
    x = buf.view(torch.int64)
    w = bits
    for lane in (8, 16, 32):  # each 2L-bit lane: low half | high half moved down to bit w
        lo, hi = _ROUNDS[lane]
        high = x & hi
        high >>= lane - w
        x &= lo
        x |= high
        w *= 2
    return buf.view(groups, 8)[:, :bits].reshape(-1)[: packed_bytes(n, bits)]


def unpack(data: torch.Tensor, numel: int, bits: int) -> torch.Tensor:
    """The ``numel`` codes that :func:`pack` packed into ``data`` (uint8, at least
    :func:`packed_bytes` bytes; any further bytes are ignored): uint8 for codes of up to 8
    bits, int32 for wider ones."""
    _check(bits)
    n = int(numel)
    need = packed_bytes(n, bits)
    data = data.reshape(-1)
    if data.dtype != torch.uint8 or data.numel() < need:
        raise ConfigError(
            f"cannot unpack {n} codes of {bits} bits from {data.numel()} {data.dtype} values "
            f"({need} bytes needed)")
    if bits > 8:
        return _unpack_wide(data[:need], n, bits)
    if bits == 8:
        return data[:n].clone()
    groups = -(-n // 8)
    stream = torch.zeros(groups * bits, dtype=torch.uint8, device=data.device)
    stream[:need] = data[:need]
    buf = torch.zeros(groups, 8, dtype=torch.uint8, device=data.device)
    buf[:, :bits] = stream.view(groups, bits)
    x = buf.view(-1).view(torch.int64)
    w = 4 * bits
    for lane in (32, 16, 8):  # each 2L-bit lane: its low w bits, and the w above them at L
        lo = _lanes((1 << w) - 1, 2 * lane)
        high = x >> w
        high &= lo
        high <<= lane
        x &= lo
        x |= high
        w //= 2
    return buf.view(-1)[:n]


def _pack_wide(flat: torch.Tensor, bits: int) -> torch.Tensor:
    """:func:`pack` for codes of 9 to 16 bits: a (numel, bits) matrix of single bits."""
    n = flat.numel()
    shifts = torch.arange(bits, dtype=torch.int32, device=flat.device)
    bitmat = (flat.to(torch.int32).unsqueeze(1) >> shifts) & 1
    stream = torch.zeros(packed_bytes(n, bits) * 8, dtype=torch.int32, device=flat.device)
    stream[: n * bits] = bitmat.reshape(-1)
    weights = torch.arange(8, dtype=torch.int32, device=flat.device)
    return (stream.view(-1, 8) << weights).sum(1, dtype=torch.int32).to(torch.uint8)


def _unpack_wide(data: torch.Tensor, n: int, bits: int) -> torch.Tensor:
    """:func:`unpack` for codes of 9 to 16 bits."""
    weights = torch.arange(8, dtype=torch.int32, device=data.device)
    stream = ((data.to(torch.int32).unsqueeze(1) >> weights) & 1).reshape(-1)[: n * bits]
    shifts = torch.arange(bits, dtype=torch.int32, device=data.device)
    return (stream.view(n, bits) << shifts).sum(1, dtype=torch.int32)
