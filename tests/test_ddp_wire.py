"""The DDP hook's wire format (rsdgc_sim.ddp.wire): packing per-rank sparse payloads into
one aligned byte buffer and adding every rank's pairs back, without a process group."""

from __future__ import annotations

import pytest
import torch

from rsdgc_sim.compress import CompressorState, Payload, create, decompress_sum
from rsdgc_sim.ddp.wire import ALIGN, Layout, pack, unpack_sum, value_dtype
from rsdgc_sim.errors import ConfigError

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _payloads(rank: int, dtype: torch.dtype, numels: list[int]) -> list[Payload]:
    g = torch.Generator().manual_seed(rank)
    comp = create("topk", density=0.1)
    state = CompressorState()
    grads = {f"t{j}": torch.randn(n, generator=g).to(dtype) for j, n in enumerate(numels)}
    return list(comp.compress_many(grads, state).values())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numels", [[10], [30, 10], [10, 10, 70], [7, 13, 21, 33]])
def test_pack_unpack_round_trip_every_dtype_and_odd_size(dtype, numels):
    """For every value dtype, and tensor counts plus capacities of either parity (the old
    layout put float64 values at a 4-byte offset and crashed), the mean of two ranks' packed
    pairs added into a flat bucket equals the mean of their decompressed payloads."""
    ranks = [_payloads(r, dtype, numels) for r in range(2)]
    for capacity in (sum(p.nnz for p in ranks[0]), sum(p.nnz for p in ranks[0]) + 1):
        layout = Layout(len(numels), capacity, dtype)
        gathered = torch.cat([pack(ps, layout, "cpu") for ps in ranks])
        starts = torch.tensor([0, *torch.tensor(numels).cumsum(0)[:-1].tolist()])
        out = torch.zeros(sum(numels), dtype=dtype)
        unpack_sum(gathered, 2, layout, starts, out)
        expected = torch.cat([decompress_sum([p0, p1], average=True)
                              for p0, p1 in zip(*ranks, strict=True)])  # fmt: skip
        tol = 0 if dtype in (torch.float64, torch.float32) else 1e-2
        assert torch.allclose(out.double(), expected.double(), atol=tol, rtol=0), capacity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tensors, capacity", [(1, 1), (2, 3), (3, 5), (5, 0)])
def test_layout_sections_are_aligned(dtype, tensors, capacity):
    """Values start at 0, int32 indices and counts at multiples of 4, and every rank's
    buffer is a multiple of 8 bytes, so each rank's row is aligned for any dtype."""
    layout = Layout(tensors, capacity, dtype)
    assert layout.nbytes % ALIGN == 0 and ALIGN == 8
    assert layout.index_offset % 8 == 0 and layout.count_offset % 4 == 0
    assert layout.index_offset >= capacity * layout.value_size
    assert layout.count_offset + 4 * tensors <= layout.nbytes
    rows = torch.zeros(3 * layout.nbytes, dtype=torch.uint8).view(3, layout.nbytes)
    for r in range(3):  # views at every rank's row work (they raise when misaligned)
        assert layout.values(rows[r]).numel() == capacity
        assert layout.indices(rows[r]).numel() == capacity
        assert layout.counts(rows[r]).numel() == tensors


def test_value_dtype_promotes_without_loss():
    """Mixed payload dtypes travel in their promoted dtype (float64 is never narrowed)."""
    p64 = _payloads(0, torch.float64, [20])[0]
    p32 = _payloads(0, torch.float32, [20])[0]
    p16 = _payloads(0, torch.float16, [20])[0]
    assert value_dtype([p32, p64]) == torch.float64
    assert value_dtype([p16, p32]) == torch.float32
    assert value_dtype([p16]) == torch.float16


def test_pack_and_unpack_reject_more_than_capacity():
    """A rank that sends more pairs than the agreed capacity is an error, on either side."""
    ps = _payloads(0, torch.float32, [50])
    with pytest.raises(ConfigError, match="5 elements to send, more than the capacity 4"):
        pack(ps, Layout(1, 4, torch.float32), "cpu")
    layout = Layout(1, 5, torch.float32)
    buf = pack(ps, layout, "cpu")
    layout.counts(buf)[0] = 6
    with pytest.raises(ConfigError, match="rank 0 sent 6 elements, more than the capacity 5"):
        unpack_sum(buf, 1, layout, torch.tensor([0]), torch.zeros(50))
