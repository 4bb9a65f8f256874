"""The wire format of sparse payloads in the DDP hook: one rank's (index, value) pairs of a
bucket packed into one byte buffer of a size every rank agrees on, so that one fixed-size
all-gather (gloo needs equal sizes) moves them all.

One rank's buffer, for ``n`` tensors and room for ``capacity`` pairs of value dtype ``v``
(``e`` bytes per value)::

    offset 0                      values   capacity x v, zero-padded to a multiple of 8 bytes
    offset V = pad8(capacity e)   indices  capacity x int32
    offset V + 4 capacity         counts   n x int32 (pairs sent per tensor, in bucket order)
    ... zero-padded to a multiple of 8 bytes

Every section starts at an offset that is a multiple of its element size (values at 0,
int32 at a multiple of 4), and every buffer is a multiple of 8 bytes, so each rank's row in
the gathered tensor is aligned for any value dtype (float64 included).

Quantized payloads (:class:`~rsdgc_sim.compress.payload.QuantizedPayload`) of a bucket go
in a buffer of their own, exactly their wire bytes, without padding (its size depends only
on the tensors' sizes and the compressor, so every rank's is the same)::

    offset 0                      scales   n x float32 (in bucket order)
    offset 4 n                    codes    each tensor's packed codes, end to end
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..compress.payload import SCALE_BYTES, Payload, QuantizedPayload
from ..errors import ConfigError

#: every section and every rank's buffer is aligned to this many bytes
ALIGN = 8


def _pad(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


@dataclass(frozen=True)
class Layout:
    """Where things are in one rank's buffer (see the module docstring)."""

    tensors: int
    capacity: int
    value_dtype: torch.dtype

    @property
    def value_size(self) -> int:
        return torch.empty((), dtype=self.value_dtype).element_size()

    @property
    def index_offset(self) -> int:
        return _pad(self.capacity * self.value_size)

    @property
    def count_offset(self) -> int:
        return self.index_offset + 4 * self.capacity

    @property
    def nbytes(self) -> int:
        """Bytes of one rank's buffer (a multiple of :data:`ALIGN`)."""
        return _pad(self.count_offset + 4 * self.tensors)

    def values(self, row: torch.Tensor) -> torch.Tensor:
        return row[: self.capacity * self.value_size].view(self.value_dtype)

    def indices(self, row: torch.Tensor) -> torch.Tensor:
        return row[self.index_offset : self.count_offset].view(torch.int32)

    def counts(self, row: torch.Tensor) -> torch.Tensor:
        return row[self.count_offset : self.count_offset + 4 * self.tensors].view(torch.int32)


def value_dtype(payloads: Sequence[Payload]) -> torch.dtype:
    """The dtype that holds every payload's values without loss (their promoted dtype)."""
    dtype = payloads[0].values.dtype
    for p in payloads[1:]:
        dtype = torch.promote_types(dtype, p.values.dtype)
    return dtype


def pack(payloads: Sequence[Payload], layout: Layout, device) -> torch.Tensor:
    """One rank's buffer (uint8, ``layout.nbytes``) holding ``payloads``' pairs in order."""
    total = sum(p.nnz for p in payloads)
    if total > layout.capacity:
        raise ConfigError(f"{total} elements to send, more than the capacity {layout.capacity}")
    buf = torch.zeros(layout.nbytes, dtype=torch.uint8, device=device)
    layout.counts(buf).copy_(torch.tensor([p.nnz for p in payloads], dtype=torch.int32))
    if total:
        layout.values(buf)[:total] = torch.cat([p.values.to(layout.value_dtype) for p in payloads])
        layout.indices(buf)[:total] = torch.cat([p.indices for p in payloads])
    return buf


def unpack_sum(
    gathered: torch.Tensor,
    world: int,
    layout: Layout,
    offsets: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Add every rank's pairs, divided by ``world``, into the flat bucket tensor ``out`` (one
    ``index_add_``); ``offsets``: where each packed tensor starts in ``out`` (int64)."""
    rows = gathered.view(world, layout.nbytes)
    all_idx, all_val = [], []
    for r in range(world):
        counts = layout.counts(rows[r]).to(torch.int64)
        total = int(counts.sum())
        if total > layout.capacity:
            raise ConfigError(
                f"rank {r} sent {total} elements, more than the capacity {layout.capacity}"
            )
        idx = layout.indices(rows[r])[:total].to(torch.int64)
        all_idx.append(idx + torch.repeat_interleave(offsets, counts))
        all_val.append(layout.values(rows[r])[:total])
    out.index_add_(0, torch.cat(all_idx), torch.cat(all_val).to(out.dtype), alpha=1.0 / world)


def pack_quantized(payloads: Sequence[QuantizedPayload], device) -> torch.Tensor:
    """One rank's buffer (uint8, the sum of the payloads' ``wire_bytes``) of its quantized
    payloads: the scales, then the codes (see the module docstring)."""
    scales = torch.stack([p.scale.reshape(()) for p in payloads]).to(torch.float32)
    return torch.cat([scales.to(device).view(torch.uint8)] + [p.values.to(device) for p in payloads])


def unpack_quantized(row: torch.Tensor, like: Sequence[QuantizedPayload]) -> list[QuantizedPayload]:
    """The payloads one rank packed into ``row`` (:func:`pack_quantized`), given this rank's
    payloads of the same tensors (``like``: sizes, bits and levels are the same on every
    rank); the codes are views into ``row``."""
    n = len(like)
    if row.numel() != sum(p.wire_bytes for p in like):
        raise ConfigError(f"a quantized buffer of {row.numel()} bytes, expected "
                          f"{sum(p.wire_bytes for p in like)}")
    scales = row[: SCALE_BYTES * n].clone().view(torch.float32)  # the row may be unaligned
    out, off = [], SCALE_BYTES * n
    for i, p in enumerate(like):
        k = p.values.numel()
        out.append(dataclasses.replace(p, values=row[off : off + k], scale=scales[i]))
        off += k
    return out
