"""``powersgd`` outside the trainer: torch's compression rule and wire bytes, the one-rank
compressor API, the estimated profile, the simulator's two rounds (bytes to the byte,
closed forms, a causal timeline) and ``ddp.powersgd`` against torch's orthogonalization."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsdgc_sim.compress import CompressorState, check_compressor, create
from rsdgc_sim.compress.powersgd import compressed_rank, orthogonalize, wire_elements
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.sim.timeline import WorkerCosts, run_timeline


def _torch_rule(shape, rank, rate):
    """torch's ``_should_compress`` on ``tensor.view(shape[0], -1)``, written out here."""
    n = shape[0]
    m = math.prod(shape[1:])
    r = min(n, m, rank)
    return (n + m) * r if (n + m) * r * rate < n * m else n * m


def test_cnn_small_sends_1508_values_at_rank_2():
    """The issue's example: cnn_small at 32 px, rank 2, sends 1,508 float32 values (6,032
    bytes) per iteration; 1-D tensors are always sent whole."""
    from rsdgc_sim.models import create as create_model

    net = create_model("cnn_small", num_classes=10, input_size=32)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert sum(wire_elements(s, 2, 2) for s in shapes) == 1508
    assert sum(_torch_rule(s, 2, 2) for s in shapes) == 1508
    assert all(compressed_rank(s, 2, 2) == 0 for s in shapes if len(s) == 1)


@pytest.mark.parametrize("shape", [(10, 64), (10, 32), (16, 3, 3, 3), (1, 5), (5, 1), (7,), (64, 32, 3, 3)])
@pytest.mark.parametrize("rank", [1, 2, 4, 8])
@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0, 3.0])
def test_wire_elements_follow_torch_rule(shape, rank, rate):
    """(n + m) r' values when (n + m) r' rate < n m, else every element."""
    assert wire_elements(shape, rank, rate) == _torch_rule(shape, rank, rate)


def test_params_as_torch_state():
    """Defaults as PowerSGDState's (start_iter: 2, torch's minimum); start_iter <= 1 needs
    error feedback and warm start both off, as torch requires."""
    p = check_compressor("powersgd", {})
    assert p == {"rank": 1, "start_iter": 2, "min_compression_rate": 2.0, "error_feedback": True,
                 "warm_start": True, "orthogonalization_epsilon": 0.0, "random_seed": 0}
    with pytest.raises(ConfigError, match="start_iter must be > 1"):
        check_compressor("powersgd", {"start_iter": 1})
    check_compressor("powersgd", {"start_iter": 0, "error_feedback": False, "warm_start": False})
    with pytest.raises(ConfigError, match="unknown parameter 'matrix_rank'"):
        check_compressor("powersgd", {"matrix_rank": 2})


@pytest.mark.parametrize("cols", [1, 2, 3, 5])
def test_orthogonalize_equals_torch(cols):
    """Our orthogonalization is torch's ``_orthogonalize`` bit for bit (Gram-Schmidt up to
    2 columns, QR above), with and without epsilon."""
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import _orthogonalize

    g = torch.Generator().manual_seed(cols)
    for eps in (0.0, 1e-8):
        a = torch.randn(1, 20, cols, generator=g)
        b = a.clone()
        orthogonalize(a, eps)
        _orthogonalize(b, eps)
        assert torch.equal(a, b)


def test_one_rank_compressor_api():
    """The compressor API at one rank: a compressed tensor's payload is P and Q ((n + m) r
    values, allreduced), decompress is P Q^T, decompressed + residual = gradient + old
    residual; a tensor sent whole is itself, with no residual."""
    comp = create("powersgd", rank=2)
    st = CompressorState(seed=0)
    g = torch.randn(16, 27, generator=torch.Generator().manual_seed(0))
    p = comp.compress("w", g, st)
    assert p.wire_bytes == (16 + 27) * 2 * 4 and not p.needs_allgather
    assert torch.allclose(comp.decompress(p) + st.residual("w"), g, atol=1e-6)
    g2 = torch.randn(16, 27, generator=torch.Generator().manual_seed(1))
    r = st.residual("w").clone()
    p2 = comp.compress("w", g2, st)
    assert torch.allclose(comp.decompress(p2) + st.residual("w"), g2 + r, atol=1e-6)
    b = torch.randn(16)
    pb = comp.compress("b", b, st)
    assert torch.equal(comp.decompress(pb), b) and st.residual("b") is None


def _profile(rank=2, label="psgd"):
    from rsdgc_sim.profile.device_models import device_model
    from rsdgc_sim.profile.estimate import estimate_profile

    return estimate_profile("cnn_small", 10, 32, 8, {label: {"name": "powersgd", "rank": rank}},
                            device_model({"model": "H100-SXM"}))


def test_estimated_profile_bytes_and_rounds():
    """The estimated profile carries torch's bytes per tensor, Q's share of them (m r' x 4)
    and a middle phase for the compressed tensors only."""
    prof = _profile()
    costs = prof.devices[0].compression["psgd"]
    for t in prof.tensors:
        c = costs[t.name]
        assert c.wire_bytes == 4 * _torch_rule(t.shape, 2, 2)
        r = compressed_rank(t.shape, 2, 2)
        assert c.q_bytes == (4 * math.prod(t.shape[1:]) * r if r else 0)
        assert (c.middle_s > 0) == (r > 0) and not c.sparse


def _point(workers, compressor="psgd", **kw):
    from rsdgc_sim.sim.config import SimPoint

    return SimPoint(compressor=compressor, workers=workers, bandwidth_bytes_per_s=1.25e8,
                    latency_s=2e-5, **kw)


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_simulated_bytes_and_closed_forms(workers):
    """bytes_sent_per_worker is the closed form from the model's shapes, to the byte; every
    bucket's collectives are ring allreduces (whole tensors, P, Q) whose closed forms add up
    to the simulated duration; the collective column says allreduce (ring)."""
    from rsdgc_sim.models import create as create_model
    from rsdgc_sim.sim.explain import bucket_formulas
    from rsdgc_sim.sim.simulate import simulate

    net = create_model("cnn_small", num_classes=10, input_size=32)
    expected = 4 * sum(_torch_rule(tuple(p.shape), 2, 2) for p in net.parameters())
    prof = _profile()
    pt = _point(workers)
    res = simulate(prof, pt)
    assert res.bytes_sent_per_worker == expected == 6032
    assert res.collective == "ring"
    p, a, beta = workers, pt.latency_s, 1 / pt.bandwidth_bytes_per_s
    for e in bucket_formulas(res, pt):
        assert e["closed_form_s"] is not None and "Q" in e["formula"]
        assert e["closed_form_s"] == pytest.approx(e["simulated_s"], rel=1e-9)
    total = sum(e["closed_form_s"] for e in bucket_formulas(res, pt))
    msgs = [m for b in res.buckets for m in b.messages]
    assert total == pytest.approx(sum(2 * (p - 1) * a + 2 * (p - 1) / p * n * beta
                                      for *_, n in msgs), rel=1e-9)
    assert sum(n for *_, n in msgs) == expected


def test_timeline_two_rounds_are_causal():
    """Over random cases with two rounds per bucket: the first round starts after every
    worker compressed; every worker's middle task starts after the first round ended; the
    second round starts after every middle task; decompression after the second round;
    the next bucket after the whole bucket. Middle tasks are part of the iteration."""
    rng = np.random.default_rng(3)
    for blocking in (True, False):
        for _ in range(20):
            nb = int(rng.integers(1, 5))
            ready = np.sort(rng.uniform(0, 1, nb))
            ws = [WorkerCosts(0.3 * f, 1.0 * f, 0.05 * f, tuple(f * ready),
                              tuple(f * rng.uniform(0, 0.1, nb)), tuple(f * rng.uniform(0, 0.1, nb)),
                              tuple(f * rng.uniform(0, 0.2, nb)))
                  for f in rng.uniform(0.5, 2.0, 3)]
            second = list(rng.uniform(0, 0.2, nb))
            durations = [s + float(rng.uniform(0, 0.3)) for s in second]
            tl = run_timeline(ws, durations, blocking=blocking, overlap=True, second=second)
            for b in range(nb):
                assert tl.starts[b] >= max(w.compress[b][1] for w in tl.workers) - 1e-12
                assert tl.first_ends[b] >= tl.starts[b] + durations[b] - second[b] - 1e-12
                for w in tl.workers:
                    assert w.middle[b][0] >= tl.first_ends[b] - 1e-12
                    assert w.decompress[b][0] >= tl.ends[b] - 1e-12
                last_middle = max(w.middle[b][1] for w in tl.workers)
                assert tl.ends[b] == pytest.approx(max(last_middle, tl.first_ends[b]) + second[b])
                if b:
                    assert tl.starts[b] >= tl.ends[b - 1] - 1e-12
            without = run_timeline([WorkerCosts(w.forward, w.backward, w.optimizer, w.ready,
                                                w.compress, w.decompress) for w in ws],
                                   durations, blocking=blocking, overlap=True)
            assert tl.end >= without.end - 1e-12


def test_bucket_in_process_one_rank_is_exact_low_rank():
    """At one rank with a tensor of rank r, PowerSGD at rank r recovers it (to rounding)
    and leaves a near-zero error; a 1-D tensor comes back unchanged."""
    from rsdgc_sim.ddp.powersgd import PowerSGDRankState, bucket_in_process

    params = create("powersgd", rank=2).p
    g = torch.Generator().manual_seed(0)
    low = torch.randn(30, 2, generator=g) @ torch.randn(2, 20, generator=g)
    bias = torch.randn(30, generator=g)
    buf = torch.cat([low.reshape(-1), bias])
    st = PowerSGDRankState(params)
    sent = bucket_in_process([st], 1, [buf], [(30, 20), (30,)])
    assert sent == 4 * (30 + (30 + 20) * 2)
    assert torch.allclose(buf[:600].view(30, 20), low, atol=1e-4)
    assert torch.equal(buf[600:], bias)
    assert float(st.error[1].abs().max()) < 1e-4
