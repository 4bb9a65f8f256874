"""``powersgd``'s measured profile (:mod:`rsdgc_sim.profile.powersgd_costs`): the profiler
runs the virtual trainer's own per-bucket code (:class:`rsdgc_sim.ddp.powersgd.BucketRound`,
equal to torch's hook), on the same buckets in the same order; it fills each phase and
torch's bytes as the estimate does; ``rsdgc-sim profile`` and ``run`` work end to end on a
CPU scenario with powersgd."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from click.testing import CliRunner

from rsdgc_sim.compress.powersgd import compressed_rank
from tests.conftest import TINY

#: one bucket cap (bytes) for the engine and the profiler: cnn_small's 97 KiB of gradients
#: at 32 px make several buckets
CAP = 16 * 1024
SPEC = {"name": "powersgd", "rank": 2}
PHASES = ("compress", "unpack_whole", "middle", "decompress")


@pytest.fixture
def calls(monkeypatch):
    """Every call of a :class:`BucketRound` phase, as (phase, bucket index, the bucket's
    shapes), whoever makes it."""
    from rsdgc_sim.ddp.powersgd import BucketRound

    got: list = []
    for phase in PHASES:
        real = getattr(BucketRound, phase)

        def spy(self, *a, real=real, phase=phase, **kw):
            got.append((phase, self.bucket, tuple(tuple(v.shape) for v in self.views)))
            return real(self, *a, **kw)

        monkeypatch.setattr(BucketRound, phase, spy)
    return got


def _engine_iteration(calls: list) -> tuple[list, int, list[list[int]]]:
    """The virtual trainer at 1 rank: the calls of its first compressed iteration, the
    bytes it all-reduced, its buckets."""
    from rsdgc_sim.compress import create
    from rsdgc_sim.models import create as create_model
    from rsdgc_sim.train.engine import VirtualDDP
    from rsdgc_sim.train.virtual import cross_entropy

    net = create_model("cnn_small", num_classes=10, input_size=32, seed=0)
    engine = VirtualDDP(net, create("powersgd", rank=SPEC["rank"]), 1, first_bucket_bytes=CAP, bucket_cap_bytes=CAP)
    g = torch.Generator().manual_seed(0)
    batch = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g))]
    for _ in range(engine.dense_iters):
        assert not engine.iterate(batch, cross_entropy).compressed
    st = engine.iterate(batch, cross_entropy)
    assert st.compressed
    return list(calls), st.collective_bytes, engine.buckets


def _measured():
    from rsdgc_sim.profile.measure import measure_profile

    return measure_profile("cnn_small", 10, 32, 8, "cpu", {"psgd": SPEC}, warmup=0,
                           min_iterations=2, max_iterations=2, budget_s=0.0, buckets=(CAP, CAP))


def test_profile_runs_the_engines_bucket_rounds(calls):
    """The profiler calls the virtual trainer's per-bucket phases: for each phase the same
    buckets (index and tensor shapes) in the same order, several of them; the phases of a
    bucket in the hook's order."""
    engine, sent, buckets = _engine_iteration(calls)
    calls.clear()
    prof = _measured()
    assert len(buckets) >= 3
    for phase in PHASES:
        want = [c for c in engine if c[0] == phase]
        got = [c for c in calls if c[0] == phase]
        assert len(want) == len(buckets)
        assert got[: len(want)] == want, phase
    # per bucket, in a timed iteration: compress, then the callbacks in the hook's order
    first = calls[: 4 * len(buckets)]
    for b in range(len(buckets)):
        assert [c[0] for c in first if c[1] == b] == list(PHASES)
    assert sum(c.wire_bytes for c in prof.devices[0].compression["psgd"].values()) == sent


def test_measured_profile_phases_and_bytes_as_the_estimate():
    """Per tensor: torch's wire bytes and Q's share of them, as the estimated profile has
    them; compress and decompress measured for every tensor, the middle phase for the
    compressed ones only; the totals are the measured per-iteration medians."""
    from rsdgc_sim.profile.device_models import device_model
    from rsdgc_sim.profile.estimate import estimate_profile

    prof = _measured()
    est = estimate_profile("cnn_small", 10, 32, 8, {"psgd": SPEC}, device_model({"model": "V100"}))
    got, want = prof.devices[0].compression["psgd"], est.devices[0].compression["psgd"]
    assert got.keys() == want.keys()
    ranks = {t.name: compressed_rank(t.shape, 2, 2) for t in prof.tensors}
    assert sum(ranks.values()) > 0 and min(ranks.values()) == 0
    for n, c in got.items():
        w = want[n]
        assert (c.wire_bytes, c.q_bytes, c.sparse) == (w.wire_bytes, w.q_bytes, False), n
        assert c.compress_s > 0 and c.decompress_s > 0 and c.accumulate_s == 0, n
        assert (c.middle_s > 0) == (ranks[n] > 0), n
    assert prof.devices[0].samples["compress:psgd"] == 2


def test_cli_profile_and_run_with_powersgd(write_scenario, tmp_path):
    """``rsdgc-sim profile`` and ``run`` on a CPU scenario with powersgd: the profile is
    measured (no error), and every powersgd row sends torch's closed form by all-reduce."""
    from rsdgc_sim.cli import cli
    from rsdgc_sim.models import create as create_model

    data = copy.deepcopy(TINY)
    data["model"]["input_size"] = 32
    data["compressors"] = [{"name": "none"}, dict(SPEC)]
    data["cluster"]["workers"] = [2, 8]
    data["cluster"]["bandwidth"] = ["1Gbit/s"]
    path = write_scenario(data)
    runner = CliRunner()
    res = runner.invoke(cli, ["profile", str(path)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "powersgd(rank=2)" in res.output
    out = tmp_path / "out"
    res = runner.invoke(cli, ["run", str(path), "--out", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    rows = [r for r in json.loads((out / "results.json").read_text())["runs"]
            if r["compressor"] == "powersgd(rank=2)"]
    net = create_model("cnn_small", num_classes=10, input_size=32)
    want = 0
    for p in net.parameters():
        n, m = p.shape[0], math.prod(p.shape[1:])
        r = min(n, m, 2)
        want += 4 * ((n + m) * r if (n + m) * r * 2 < n * m else n * m)
    assert want == 6032 and len(rows) == 2
    for r in rows:
        assert r["bytes_sent_per_worker"] == want
        assert "allgather" not in r["collective"]
