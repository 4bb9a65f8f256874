"""The teaching scenarios (scenarios/teaching/): each is documented (question, command,
answer), runs in well under a second from its committed profile, and its answer holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rsdgc_sim.scenario import load_scenario
from rsdgc_sim.study.orchestrate import run_scenario

TEACHING = Path(__file__).resolve().parent.parent / "scenarios" / "teaching"
FILES = sorted(TEACHING.glob("*.yaml"))
G = 1e9 / 8  # bytes/s in one Gbit/s


def it(res, compressor: str = "none", **point) -> float:
    """The iteration time (s) of ``compressor`` at the point whose values include ``point``
    (keys: dotted paths with ``__`` for dots, or workers/bandwidth)."""
    want = {("cluster." + k if k in ("workers", "bandwidth") else k.replace("__", ".")): v
            for k, v in point.items()}
    rows = [r for r in res.runs if r["compressor"] == compressor
            and all(r["point"].get(k) == v for k, v in want.items())]
    assert len(rows) == 1, (compressor, point, len(rows))
    return rows[0]["iteration_s"]


def row(res, compressor: str, **point) -> dict:
    it(res, compressor, **point)
    want = {("cluster." + k if k in ("workers", "bandwidth") else k.replace("__", ".")): v
            for k, v in point.items()}
    return next(r for r in res.runs if r["compressor"] == compressor
                and all(r["point"].get(k) == v for k, v in want.items()))


def test_all_eight_are_there():
    """Ring vs tree, sparse vs dense, all-reduce vs all-gather, overlap, straggler, incast,
    fat-tree oversubscription, hierarchical: one file each."""
    assert [f.stem for f in FILES] == sorted([
        "ring_vs_tree", "sparse_vs_dense", "allreduce_vs_allgather", "overlap", "straggler",
        "incast", "fat_tree_oversubscription", "hierarchical"])


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_each_is_documented_and_self_contained(path):
    """Each file states its QUESTION, the COMMAND that answers it (naming the file) and the
    ANSWER; its profile is a committed file (nothing is measured)."""
    text = path.read_text()
    for head in ("# QUESTION:", "# COMMAND:", "# ANSWER:"):
        assert head in text, head
    assert f"scenarios/teaching/{path.name}" in text
    sc = load_scenario(path)
    assert sc.profile.file and Path(sc.profile.file).is_file()
    assert Path(sc.profile.file).parent == TEACHING / "profiles"


def _run(name: str):
    return run_scenario(load_scenario(TEACHING / f"{name}.yaml"))


def test_ring_vs_tree():
    """Small messages: ring ahead at 8 workers, tree ahead at 64 (latency-bound)."""
    r = _run("ring_vs_tree")
    c = "cluster__collective"
    assert it(r, workers=8, **{c: "ring"}) < it(r, workers=8, **{c: "tree"})
    assert it(r, workers=64, **{c: "tree"}) < 0.6 * it(r, workers=64, **{c: "ring"})


def test_ring_vs_tree_large_message_from_the_closed_forms():
    """The large-message half of the answer: 25 MiB on 64 workers, 43.8 ms by ring and
    251.9 ms by tree, the simulated time equal to the closed form."""
    from rsdgc_sim.sim.collective_time import collective_time

    ring = collective_time("ring", 64, 25 * 2**20, 10 * G, 20e-6)
    tree = collective_time("tree", 64, 25 * 2**20, 10 * G, 20e-6)
    assert ring.simulated_s == pytest.approx(2 * 63 * 20e-6 + 2 * 63 / 64 * 25 * 2**20 / (10 * G))
    assert tree.simulated_s == pytest.approx(2 * 6 * (20e-6 + 25 * 2**20 / (10 * G)))
    assert ring.closed_form_s == pytest.approx(ring.simulated_s, rel=1e-12)
    assert f"{ring.simulated_s * 1e3:.1f}" == "43.8" and f"{tree.simulated_s * 1e3:.1f}" == "251.9"


def test_sparse_vs_dense():
    """Top-k 1 % pays off at 4 and 64 workers and loses at 128; 0.1 % holds out to 128 and
    loses at 256; both lose well before 1/density (compression costs too)."""
    r = _run("sparse_vs_dense")
    s1 = {w: row(r, "topk(density=0.01)", workers=w)["speedup_vs_dense"]
          for w in (4, 64, 128, 256)}
    s01 = {w: row(r, "topk(density=0.001)", workers=w)["speedup_vs_dense"]
           for w in (128, 256, 1024)}
    assert s1[4] > 2 and s1[64] > 1 > s1[128] > s1[256]
    assert s01[128] > 1 > s01[256] > s01[1024]


def test_sparse_vs_dense_breakeven_matches_the_answer():
    """`breakeven --vary cluster.workers` on it: 74 workers for 1 %, 168 for 0.1 %."""
    from rsdgc_sim.study.breakeven import find_breakeven
    from rsdgc_sim.study.profiles import profile_scenario

    sc = load_scenario(TEACHING / "sparse_vs_dense.yaml")
    res = find_breakeven(sc, "cluster.workers", lambda s: profile_scenario(s)[0])
    assert [(b.compressor, b.breakeven, b.direction) for b in res] == [
        ("topk(density=0.01)", 74, "stops paying off"),
        ("topk(density=0.001)", 168, "stops paying off")]


def test_overlap():
    """Overlap hides communication at every bandwidth, never more than backward lasts,
    and most of it once the network is fast."""
    r = _run("overlap")
    for bw in (10 * G, 25 * G, 100 * G):
        off = row(r, "none", bandwidth=bw, ddp__overlap=False)
        on = row(r, "none", bandwidth=bw, ddp__overlap=True)
        assert on["iteration_s"] < off["iteration_s"]
        assert off["iteration_s"] - on["iteration_s"] < on["compute_s"]
    fast_off = row(r, "none", bandwidth=100 * G, ddp__overlap=False)
    fast_on = row(r, "none", bandwidth=100 * G, ddp__overlap=True)
    assert fast_on["exposed_communication_s"] < 0.2 * fast_off["exposed_communication_s"]


def test_straggler():
    """Compute-bound (100 Gbit/s), one 2x straggler nearly doubles the iteration; at
    10 Gbit/s, where the network dominates, it costs far less."""
    r = _run("straggler")
    sf = "cluster__stragglers__speed_factors"
    slow = [2, 1, 1, 1, 1, 1, 1, 1]
    fast_ratio = it(r, bandwidth=100 * G, **{sf: slow}) / it(r, bandwidth=100 * G, **{sf: [1]})
    slow_ratio = it(r, bandwidth=10 * G, **{sf: slow}) / it(r, bandwidth=10 * G, **{sf: [1]})
    assert 1.8 < fast_ratio < 2.0
    assert 1.0 < slow_ratio < 1.3
    topk = "topk(density=0.01)"
    assert it(r, topk, bandwidth=10 * G, **{sf: slow}) > 1.9 * it(r, topk, bandwidth=10 * G, **{sf: [1]})


def test_incast():
    """One server: the iteration doubles with the worker count (throughput flat); eight
    shards stay flat up to eight workers."""
    r = _run("incast")
    sh = "cluster__collective_params__shards"
    one = [it(r, workers=w, **{sh: 1}) for w in (2, 4, 8, 16, 32)]
    for a, b in zip(one, one[1:], strict=False):
        assert 1.8 < b / a < 2.1
    eight = [it(r, workers=w, **{sh: 8}) for w in (2, 4, 8)]
    assert eight[0] == pytest.approx(eight[2], rel=1e-9)
    assert it(r, workers=32, **{sh: 8}) < 0.2 * one[-1]


def test_fat_tree_oversubscription():
    """4:1 slows dense about 3x; top-k does not pay off at 1:1 and does at 4:1."""
    r = _run("fat_tree_oversubscription")
    o = "cluster__topology__oversubscription"
    topk = "topk(density=0.01)"
    for w in (16, 64):
        assert 2.5 < it(r, workers=w, **{o: 4}) / it(r, workers=w, **{o: 1}) < 4
        assert row(r, topk, workers=w, **{o: 1})["speedup_vs_dense"] < 1
        assert row(r, topk, workers=w, **{o: 4})["speedup_vs_dense"] > 1


def test_hierarchical():
    """On 8-GPU nodes hierarchical beats a flat ring at 16 and 64 workers, by less at 64."""
    r = _run("hierarchical")
    c = "cluster__collective"
    gains = [it(r, workers=w, **{c: "ring"}) / it(r, workers=w, **{c: "hierarchical"})
             for w in (16, 64)]
    assert gains[0] > 1.3 and 1 < gains[1] < gains[0]


def test_answers_quote_what_the_runs_give():
    """Numbers in the ANSWER comments are the runs' own (a few, checked to 0.1 ms)."""
    text = (TEACHING / "straggler.yaml").read_text()
    r = _run("straggler")
    sf = "cluster__stragglers__speed_factors"
    a = it(r, bandwidth=100 * G, **{sf: [1]}) * 1e3
    b = it(r, bandwidth=100 * G, **{sf: [2, 1, 1, 1, 1, 1, 1, 1]}) * 1e3
    assert re.search(rf"{a:.1f} -> {b:.1f} ms", text), (a, b)
    text = (TEACHING / "hierarchical.yaml").read_text()
    r = _run("hierarchical")
    c = "cluster__collective"
    assert f"{it(r, workers=16, **{c: 'hierarchical'}) * 1e3:.1f} / " \
           f"{it(r, workers=64, **{c: 'hierarchical'}) * 1e3:.1f} ms" in text


def test_each_bucket_has_its_formula_beside_the_simulated_time():
    """sparse_vs_dense at 16 workers: every bucket's ring allreduce (dense) and ring
    all-gather (top-k) has a closed form equal to the simulated duration, printed with the
    numbers put in; at one worker there is nothing to explain."""
    from rsdgc_sim.sim import simulate
    from rsdgc_sim.sim.explain import bucket_formulas, explain_iteration
    from rsdgc_sim.study.profiles import profile_scenario

    sc = load_scenario(TEACHING / "sparse_vs_dense.yaml")
    prof = profile_scenario(sc)[0]
    point = next(g for g in sc.grid() if g.workers == 16)
    for label, head in (("none", "T = 2(p-1)·alpha + 2(p-1)/p·n·beta"),
                        ("topk(density=0.01)", "T = (p-1)·alpha + (p-1)·m·beta")):
        sp = sc.sim_point(label, point)
        res = simulate(prof, sp)
        rows = bucket_formulas(res, sp)
        assert len(rows) == len(res.buckets) > 1
        for e in rows:
            assert e["closed_form_s"] == pytest.approx(e["simulated_s"], rel=1e-12)
            assert e["formula"].startswith(head)
        # the all-gather's closed form, by hand: (p - 1) m / B at latency 0
        if label != "none":
            e = rows[0]
            assert e["closed_form_s"] == pytest.approx(15 * e["bytes"] / (10 * G), rel=1e-12)
        text = explain_iteration(res, sp)
        assert text.count("closed form") == len(rows)
    one = sc.sim_point("none", next(g for g in sc.grid() if g.workers == 4).model_copy(
        update={"workers": 1}))
    assert all(e["closed_form_s"] is None for e in bucket_formulas(simulate(prof, one), one))
