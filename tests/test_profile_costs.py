"""The profiler's compression costs, measured per DDP bucket through the hook's own code
(:mod:`rsdgc_sim.profile.bucket_costs`): each time lands in its own field, a bucket's
measured time is split over its tensors so that the buckets add up to what was measured,
the receive side's growth with the ranks becomes the all-gathered tensors' accumulate_s,
and every timed iteration follows a fresh backward.

Exact values come from a fake clock that only the fake compressor's calls (and a fake
receive side) advance, with dyadic per-element costs, so every sum, ratio and median is
exact in float64; real timings are checked with ratios far wider than timing noise."""

from types import SimpleNamespace

import pytest
import torch

from rsdgc_sim.compress import create
from rsdgc_sim.profile import bucket_costs
from rsdgc_sim.profile.bucket_costs import WORLD, measure_compression
from rsdgc_sim.profile.sampling import StopRule

#: per-element seconds: compress_many, compress alone, decompress, accumulate, and the fake
#: receive side's base and per-extra-rank costs (exact binary fractions)
MANY, ONE, DEC, ACC, R0, R1 = 2.0**-20, 2.0**-18, 3 * 2.0**-20, 5 * 2.0**-20, 2.0**-19, 2.0**-21
NUMEL = {"conv": 4096, "fc": 640, "bias": 10}
BUCKETS = [["conv"], ["fc", "bias"]]


class _FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Fake:
    """A compressor whose calls advance the fake clock by a fixed cost per element; its
    payloads are the real ones of ``inner`` (so the hook's code can pack and write them)."""

    name = "fake"

    def __init__(self, clock, inner, warmup_iters=0):
        self.clock, self.inner = clock, inner
        self.p = SimpleNamespace(warmup_iters=warmup_iters)
        self.max_sent = None
        #: the state's iteration at each compress_many call, and at each compress call
        self.many_at: list[int] = []
        self.one_at: list[int] = []

    def compress_many(self, grads, state):
        self.many_at.append(state.iteration)
        self.clock.t += MANY * sum(g.numel() for g in grads.values())
        return self.inner.compress_many(grads, state)

    def compress(self, name, g, state):
        self.one_at.append(state.iteration)
        self.clock.t += ONE * g.numel()
        return self.inner.compress(name, g, state)

    def decompress(self, payload):
        self.clock.t += DEC * payload.numel
        return self.inner.decompress(payload)

    def accumulate(self, out, payload):
        self.clock.t += ACC * payload.numel
        return self.inner.accumulate(out, payload)


def _grads():
    gen = torch.Generator().manual_seed(0)
    return {n: torch.randn(k, generator=gen) for n, k in NUMEL.items()}


def _backward(grads):
    """A stand-in for backward: every gradient ready in turn, in reverse order (as backward
    makes the last layer's first)."""
    def backward(on_ready):
        for n in reversed(list(grads)):
            on_ready(n, grads[n])
        return grads
    return backward


def _measure(comp, clock, warmup=2, iterations=3, backward=None):
    rule = StopRule(min_iterations=iterations, max_iterations=iterations, budget_s=0.0)
    return measure_compression(comp, backward or _backward(_grads()), BUCKETS, "cpu", rule,
                               warmup=warmup, clock=clock)


@pytest.fixture
def receive(monkeypatch):
    """The receive side costs R0 per element of the bucket plus R1 per element and extra
    rank, on the fake clock (the real one runs too, untimed by the fake clock)."""
    real = bucket_costs.finish_receive
    clocks: list[_FakeClock] = []

    def fake(send, comp, world, out):
        clocks[0].t += (R0 + (world - 1) * R1) * out.numel()
        return real(send, comp, world, out)

    monkeypatch.setattr(bucket_costs, "finish_receive", fake)
    return clocks


def test_dense_payloads_cost_their_bucket_split_by_their_own_times(receive):
    """Dense payloads (allreduced): compress_s = MANY x numel (the bucket's compress_many,
    split by each tensor's own time ONE x numel), decompress_s = its share of the receive
    side at one rank (R0 x bucket numel + the dense writes DEC x numel, split by DEC x numel),
    accumulate_s = 0 (an allreduced tensor's receive side does not grow with the ranks)."""
    clock = _FakeClock()
    receive.append(clock)
    got = _measure(_Fake(clock, create("none")), clock)
    for names in BUCKETS:
        nb = sum(NUMEL[n] for n in names)
        for n in names:
            c = got.costs[n]
            assert c.compress_s == MANY * NUMEL[n]
            assert c.decompress_s == (R0 * nb + DEC * nb) * NUMEL[n] / nb
            assert (c.accumulate_s, c.sparse, c.wire_bytes) == (0.0, False, 4 * NUMEL[n])
    assert got.compress == [MANY * sum(NUMEL.values())] * 3


def test_all_gathered_payloads_carry_the_slope_in_the_ranks(receive):
    """Top-k payloads (all-gathered): the receive side at p ranks is R0 x n + (p - 1) x R1 x
    n per bucket of n elements; decompress_s is the one-rank part and accumulate_s the
    per-extra-rank part, each split by the tensors' own decompress / accumulate times (DEC
    and ACC per element), so decompress_s + (p - 1) accumulate_s gives the bucket back."""
    clock = _FakeClock()
    receive.append(clock)
    got = _measure(_Fake(clock, create("topk", density=0.5)), clock)
    for names in BUCKETS:
        nb = sum(NUMEL[n] for n in names)
        for n in names:
            c = got.costs[n]
            assert c.sparse
            assert c.decompress_s == R0 * nb * NUMEL[n] / nb
            assert c.accumulate_s == R1 * nb * NUMEL[n] / nb
        at_world = sum(got.costs[n].decompress_s + (WORLD - 1) * got.costs[n].accumulate_s
                       for n in names)
        assert at_world == (R0 + (WORLD - 1) * R1) * nb
    assert got.decompress == [R0 * sum(NUMEL.values())] * 3


class _Mixed(_Fake):
    """Top-k payloads, but the bias goes dense (allreduced), as NSI sends 1-D tensors."""

    def __init__(self, clock):
        super().__init__(clock, create("topk", density=0.5))
        self.dense = create("none")

    def compress_many(self, grads, state):
        out = super().compress_many(grads, state)
        if "bias" in out:
            out["bias"] = self.dense.compress("bias", grads["bias"], state)
        return out


def test_the_slope_goes_to_the_all_gathered_tensors_only(receive):
    """In a bucket of an all-gathered tensor (fc) and an allreduced one (bias), the receive
    side's growth with the ranks, R1 x bucket numel per extra rank, is all fc's accumulate_s;
    the bias's is 0 (its allreduced value is written once, whatever the ranks)."""
    clock = _FakeClock()
    receive.append(clock)
    got = _measure(_Mixed(clock), clock)
    nb = NUMEL["fc"] + NUMEL["bias"]
    assert (got.costs["fc"].sparse, got.costs["bias"].sparse) == (True, False)
    assert got.costs["fc"].accumulate_s == R1 * nb
    assert got.costs["bias"].accumulate_s == 0.0


def test_each_bucket_is_compressed_inside_backward_once_it_is_complete(receive):
    """Backward makes bias, fc, conv ready in turn: bucket [fc, bias] is complete after fc,
    but DDP hands buckets over in order, so both are compressed after conv is ready, bucket
    [conv] first, inside backward; every iteration (2 + 3) runs its own backward, and one
    more gives the shares."""
    clock = _FakeClock()
    receive.append(clock)
    grads = _grads()
    events: list[str] = []
    comp = _Fake(clock, create("topk", density=0.5))
    many = comp.compress_many

    def compress_many(g, state):
        events.append("compress " + "+".join(g))
        return many(g, state)

    comp.compress_many = compress_many

    def backward(on_ready):
        events.append("backward")
        for n in ("bias", "fc", "conv"):
            events.append(f"ready {n}")
            on_ready(n, grads[n])
        events.append("end")
        return grads

    _measure(comp, clock, backward=backward)
    one = ["backward", "ready bias", "ready fc", "ready conv", "compress conv", "compress fc+bias",
           "end"]
    assert events == one * 5 + ["backward", "ready bias", "ready fc", "ready conv", "end"]


def test_a_gradient_backward_never_gives_is_an_error(receive):
    """A tensor of a bucket whose gradient backward never made ready (an unused parameter)
    cannot be measured per bucket: a ProfileError names it."""
    from rsdgc_sim.errors import ProfileError

    clock = _FakeClock()
    receive.append(clock)
    grads = _grads()

    def backward(on_ready):
        on_ready("conv", grads["conv"])
        return grads

    with pytest.raises(ProfileError, match=r"no gradient for \['fc', 'bias'\]"):
        _measure(_Fake(clock, create("topk", density=0.5)), clock, backward=backward)


def test_every_timed_compression_runs_after_the_warm_up(receive):
    """A compressor whose warm-up lasts 1000 iterations is timed at iterations 1000 on: two
    buckets per iteration, 2 + 3 iterations at 1000..1004; the per-tensor shares (3
    tensors, 3 rounds) at 1000, 1001, 1002."""
    clock = _FakeClock()
    receive.append(clock)
    comp = _Fake(clock, create("topk", density=0.5), warmup_iters=1000)
    _measure(comp, clock)
    assert comp.many_at == [i for i in range(1000, 1005) for _ in BUCKETS]
    assert comp.one_at == [1000] * 3 + [1001] * 3 + [1002] * 3


def test_none_is_timed_on_ddps_dense_path(receive):
    """``none`` takes DDP's dense path in the hook (the bucket divided by the world size,
    one allreduce): no compressor call is timed and nothing is decompressed."""
    clock = _FakeClock()
    receive.append(clock)
    comp = create("none")
    got = _measure(comp, clock)
    assert got.compress == [0.0] * 3  # the fake clock does not see the division
    assert all(c.decompress_s == 0.0 and c.accumulate_s == 0.0 and not c.sparse
               for c in got.costs.values())


# -- real timings ----------------------------------------------------------------------

def _real(name, numel, **params):
    gen = torch.Generator().manual_seed(0)
    grads = {"big": torch.randn(numel, generator=gen), "tiny": torch.randn(4, generator=gen)}
    rule = StopRule(min_iterations=5, max_iterations=5, budget_s=0.0)
    import time

    return measure_compression(create(name, **params), _backward(grads), [["tiny", "big"]],
                               "cpu", rule, warmup=1, clock=time.perf_counter).costs


def test_sparse_receive_grows_with_the_payload():
    """Top-k keeping 1 Mi of 2 Mi values in one bucket with a 4-element tensor: the big
    tensor's compression, decompression (unpacking, index_add) and accumulate share are far
    larger than the tiny one's (ratios near 1000 measured, 10 asserted)."""
    costs = _real("topk", 1 << 21, density=0.5)
    big, tiny = costs["big"], costs["tiny"]
    assert big.compress_s > 10 * tiny.compress_s > 0
    assert big.decompress_s > 10 * tiny.decompress_s > 0
    assert big.accumulate_s > 0


def test_shared_index_payloads_are_not_all_gathered():
    """Random-k with shared indices (every rank draws the same ones) carries indices but is
    allreduced: its cost says sparse=False, counts the values only (4 bytes each) and its
    receive side does not grow with the ranks; per-rank random-k is all-gathered with value
    + index (8 bytes each)."""
    g = {"w": torch.randn(100, 50, generator=torch.Generator().manual_seed(0))}
    rule = StopRule(min_iterations=1, max_iterations=1, budget_s=0.0)
    import time

    shared, own = (
        measure_compression(create("randomk", density=0.1, shared_indices=s), _backward(g),
                            [["w"]], "cpu", rule, warmup=0, clock=time.perf_counter).costs["w"]
        for s in (True, False)
    )
    assert (shared.sparse, shared.wire_bytes, shared.accumulate_s) == (False, 4 * 500, 0.0)
    assert (own.sparse, own.wire_bytes) == (True, 8 * 500)
