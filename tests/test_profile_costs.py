"""The profiler's per-tensor compression costs: each time lands in its own field (compress,
decompress, accumulate), the per-tensor compress split sums to the measured total, and the
all-gather flag follows the payload.

Exact values come from a fake clock that only the fake compressor's calls advance (dyadic
per-element costs, so every sum, difference and median is exact in float64); real timings
are checked with ratios far wider than timing noise."""

from types import SimpleNamespace

import pytest
import torch

from rsdgc_sim.compress import CompressorState, create
from rsdgc_sim.profile import measure

#: per-element seconds of each call of the fake compressor (exact binary fractions)
MANY, ONE, DEC, ACC = 2.0**-20, 2.0**-18, 3 * 2.0**-20, 5 * 2.0**-20
NUMEL = {"conv": 4096, "fc": 640, "bias": 10}


class _FakeClock:
    def __init__(self):
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


class _FakeCompressor:
    """Advances the clock by a fixed cost per element for each call; its payloads are plain
    objects (indices, wire_bytes, numel and, when given, needs_allgather)."""

    def __init__(self, clock, needs_allgather=None, warmup_iters=0):
        self.clock = clock
        self.needs_allgather = needs_allgather
        self.p = SimpleNamespace(warmup_iters=warmup_iters)
        #: the state's iteration at each compress_many call, and at each compress call
        self.many_at: list[int] = []
        self.one_at: list[int] = []

    def _payload(self, name, g):
        extra = {} if self.needs_allgather is None else {"needs_allgather": self.needs_allgather[name]}
        return SimpleNamespace(indices=torch.arange(2), wire_bytes=g.numel(), numel=g.numel(), **extra)

    def compress_many(self, grads, state):
        self.many_at.append(state.iteration)
        self.clock.t += MANY * sum(g.numel() for g in grads.values())
        return {n: self._payload(n, g) for n, g in grads.items()}

    def compress(self, name, g, state):
        self.one_at.append(state.iteration)
        self.clock.t += ONE * g.numel()
        return self._payload(name, g)

    def decompress(self, payload):
        self.clock.t += DEC * payload.numel

    def accumulate(self, out, payload):
        self.clock.t += ACC * payload.numel


@pytest.fixture
def clock(monkeypatch):
    c = _FakeClock()
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=c.perf_counter))
    return c


def _grads():
    return {n: torch.zeros(k) for n, k in NUMEL.items()}


def test_each_cost_lands_in_its_own_field_exactly(clock):
    """With per-element costs MANY (compress_many), ONE (compress alone), DEC and ACC, each
    tensor gets compress_s = MANY * numel (its own compress time ONE * numel scaled by the
    measured total over the sum of the singles, MANY / ONE), decompress_s = DEC * numel and
    accumulate_s = ACC * numel, exactly: a profiler that zeroes, swaps or unscales any of
    them fails."""
    costs = measure._measure_compressor(_FakeCompressor(clock), _grads(), "cpu", 2, 3, 0, CompressorState)
    assert list(costs) == list(NUMEL)
    for n, k in NUMEL.items():
        assert costs[n].compress_s == MANY * k
        assert costs[n].decompress_s == DEC * k
        assert costs[n].accumulate_s == ACC * k
        assert costs[n].wire_bytes == k


def test_compress_split_sums_to_the_measured_total(clock):
    """The per-tensor compress_s add up to the measured compress_many time of one iteration
    (MANY * total numel), not to the sum of the single-tensor times (4x as much here)."""
    costs = measure._measure_compressor(_FakeCompressor(clock), _grads(), "cpu", 1, 3, 0, CompressorState)
    assert sum(c.compress_s for c in costs.values()) == MANY * sum(NUMEL.values())


@pytest.mark.parametrize("flags", [None, {"conv": False, "fc": True, "bias": False}])
def test_sparse_flag_follows_needs_allgather(clock, flags):
    """`sparse` is the payload's needs_allgather when it has one (payloads with shared indices
    are allreduced although they carry indices), else whether it has indices."""
    costs = measure._measure_compressor(_FakeCompressor(clock, flags), _grads(), "cpu", 0, 1, 0, CompressorState)
    expected = flags or dict.fromkeys(NUMEL, True)
    assert {n: c.sparse for n, c in costs.items()} == expected


def test_every_timed_compression_runs_after_the_warm_up(clock):
    """A compressor whose warm-up lasts 1000 iterations is timed at iterations 1000 on: the
    2 + 3 compress_many calls at 1000..1004, the per-tensor calls (3 tensors, 3 rounds) at
    1000, 1001, 1002."""
    comp = _FakeCompressor(clock, warmup_iters=1000)
    measure._measure_compressor(comp, _grads(), "cpu", 2, 3, 0, CompressorState)
    assert comp.many_at == [1000, 1001, 1002, 1003, 1004]
    assert comp.one_at == [1000] * 3 + [1001] * 3 + [1002] * 3


# -- real timings ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def real():
    """Real costs of a large tensor (4 Mi elements dense, 2 Mi for top-k keeping half) and a
    4-element one."""
    gen = torch.Generator().manual_seed(0)
    tiny = torch.randn(4, generator=gen)
    cases = {"none": ({}, 1 << 22), "topk": ({"density": 0.5}, 1 << 21)}
    return {
        name: measure._measure_compressor(
            create(name, **params), {"big": torch.randn(n, generator=gen), "tiny": tiny},
            "cpu", 1, 5, 0, CompressorState,
        )
        for name, (params, n) in cases.items()
    }


def test_dense_accumulate_is_timed_and_decompress_is_free(real):
    """Dense (`none`): accumulating 4 Mi floats (an add over 16 MiB, about 1.3 ms) takes far
    longer than the 4-element one and than decompressing (a view, no copy, about 15 us): a
    zeroed or swapped field fails (ratios near 100 measured, 10 asserted)."""
    big, tiny = real["none"]["big"], real["none"]["tiny"]
    assert big.accumulate_s > 10 * tiny.accumulate_s > 0
    assert big.accumulate_s > 10 * big.decompress_s


def test_sparse_decompress_and_accumulate_grow_with_the_payload(real):
    """Top-k keeping 1 Mi of 2 Mi values: decompressing (zeros + scatter, about 9 ms) and
    accumulating (index_add, about 3 ms) that payload take far longer than for a 4-element
    tensor's 2 values (40 and 14 us); so does compressing it."""
    big, tiny = real["topk"]["big"], real["topk"]["tiny"]
    assert big.decompress_s > 10 * tiny.decompress_s > 0
    assert big.accumulate_s > 10 * tiny.accumulate_s > 0
    assert big.compress_s > 10 * tiny.compress_s


def test_shared_index_payloads_are_not_all_gathered():
    """Random-k with shared indices (every rank draws the same ones) carries indices but is
    allreduced: its weight's cost says sparse=False and counts the values only (4 bytes each);
    per-rank random-k is all-gathered with value + index (8 bytes each)."""
    g = {"w": torch.randn(100, 50, generator=torch.Generator().manual_seed(0))}
    shared, own = (
        measure._measure_compressor(create("randomk", density=0.1, shared_indices=s), g, "cpu", 0, 1, 0,
                                    CompressorState)["w"]
        for s in (True, False)
    )
    assert (shared.sparse, shared.wire_bytes) == (False, 4 * 500)
    assert (own.sparse, own.wire_bytes) == (True, 8 * 500)
