"""The teaching scenario allreduce_vs_allgather (scenarios/teaching/): PowerSGD at the rank
whose payload is closest to an all-gathered compressor's sends the same bytes per worker
but all-reduces them, so its traffic per worker stays under twice its payload while the
all-gather's grows as (p - 1) x payload; the ANSWER quotes what the run gives."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from rsdgc_sim.scenario import load_scenario
from rsdgc_sim.study.orchestrate import run_scenario

PATH = Path(__file__).resolve().parent.parent / "scenarios" / "teaching" / "allreduce_vs_allgather.yaml"
WORKERS = [2, 4, 8, 16, 32, 64]
MIB = 2**20


@pytest.fixture(scope="module")
def res():
    return run_scenario(load_scenario(PATH))


@pytest.fixture(scope="module")
def shapes():
    from rsdgc_sim.models import create

    return [tuple(p.shape) for p in create("resnet50", num_classes=45, input_size=128,
                                           device="meta").parameters()]


def row(res, compressor: str, workers: int) -> dict:
    rows = [r for r in res.runs if r["compressor"] == compressor
            and r["point"]["cluster.workers"] == workers]
    assert len(rows) == 1, (compressor, workers, len(rows))
    return rows[0]


def test_ranks_are_the_closest_to_the_all_gathered_payloads(shapes):
    """powersgd rank 8 and rank 5 are what rank_for_bytes picks for efsignsgd's payload
    (ceil(n / 8) + 4 bytes per tensor) and top-k 1 %'s (8 bytes per kept element)."""
    from rsdgc_sim.compress.powersgd import rank_for_bytes

    efsign = sum(math.ceil(math.prod(s) / 8) + 4 for s in shapes)
    topk = sum(8 * max(1, int(0.01 * math.prod(s))) for s in shapes)
    assert rank_for_bytes(shapes, efsign) == 8
    assert rank_for_bytes(shapes, topk) == 5


def test_payloads_equal_the_closed_forms(res, shapes):
    """bytes_sent_per_worker: powersgd torch's (n + m) r' rule in float32, efsignsgd one bit
    per element and a float32 scale per tensor, at every worker count."""
    from rsdgc_sim.compress.powersgd import wire_bytes

    efsign = sum(math.ceil(math.prod(s) / 8) + 4 for s in shapes)
    for p in WORKERS:
        assert row(res, "powersgd(rank=8)", p)["bytes_sent_per_worker"] == wire_bytes(shapes, 8)
        assert row(res, "powersgd(rank=5)", p)["bytes_sent_per_worker"] == wire_bytes(shapes, 5)
        assert row(res, "efsignsgd", p)["bytes_sent_per_worker"] == efsign


@pytest.mark.parametrize("p", WORKERS)
def test_traffic_allreduce_flat_allgather_linear(res, p):
    """Per worker, a ring allreduce transmits 2 (p - 1)/p x payload, a ring all-gather
    (p - 1) x payload; collectives as the compressors' families say."""
    for c in ("none", "powersgd(rank=8)", "powersgd(rank=5)"):
        r = row(res, c, p)
        assert r["collective"] == "ring"
        assert r["bytes_transmitted_per_worker"] == pytest.approx(
            2 * (p - 1) / p * r["bytes_sent_per_worker"], rel=1e-12)
    for c in ("efsignsgd", "topk(density=0.01)"):
        r = row(res, c, p)
        assert r["collective"] == "allgather_ring"
        assert r["bytes_transmitted_per_worker"] == pytest.approx(
            (p - 1) * r["bytes_sent_per_worker"], rel=1e-12)


def test_the_answer(res):
    """PowerSGD is faster than its all-gathered twin at every p >= 4 and gains on dense as p
    grows while the twin loses; at p = 64 = 2 x 32 efsignsgd transmits as much as dense."""
    for ps, ag in (("powersgd(rank=8)", "efsignsgd"), ("powersgd(rank=5)", "topk(density=0.01)")):
        for p in WORKERS[1:]:
            assert row(res, ps, p)["iteration_s"] < row(res, ag, p)["iteration_s"]
        assert row(res, ps, 64)["speedup_vs_dense"] > row(res, ps, 2)["speedup_vs_dense"]
        assert row(res, ag, 64)["speedup_vs_dense"] < row(res, ag, 2)["speedup_vs_dense"]
    dense = row(res, "none", 64)["bytes_transmitted_per_worker"]
    assert row(res, "efsignsgd", 64)["bytes_transmitted_per_worker"] == pytest.approx(dense, rel=0.01)


def test_answer_quotes_what_the_run_gives(res):
    """The numbers in the ANSWER comment are the run's own."""
    text = PATH.read_text()
    for c in ("powersgd(rank=8)", "efsignsgd"):
        a, b = (row(res, c, p)["iteration_s"] * 1e3 for p in (2, 64))
        assert re.search(rf"{a:.1f} -> {b:.1f} ms", text), (c, a, b)
        t = row(res, c, 64)["bytes_transmitted_per_worker"] / MIB
        assert f"{t:.4g} MiB" in text, (c, t)
    for c in ("powersgd(rank=5)", "topk(density=0.01)"):
        r = row(res, c, 64)
        assert f"{r['iteration_s'] * 1e3:.1f} ms" in text, c
        assert f"{r['bytes_transmitted_per_worker'] / MIB:.4g} MiB" in text, c
