"""Explanation text for ``collective --explain``: the formula with the numbers put in, or
the phases read off the topology, and how the simulation was run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .collectives import Collective, Message, make_collective
from .collectives.nccl import allgather_params
from .fidelity import closed_form
from .runner import CollectiveRun
from .step import phase_cost
from .topology.build import build_topology
from .topology.graph import Topology

if TYPE_CHECKING:  # types only
    from .config import SimPoint
    from .result import SimResult


def explain(coll: Collective, run: CollectiveRun, p: int, msg: Message, topo: Topology,
            bandwidth: float | None, latency: float) -> str:
    """One collective: what it does, its closed form (symbolic, then with numbers) or its
    phases at ``step`` fidelity, and the simulated time with the level used. ``bandwidth``
    None: the topology's links carry their own."""
    doc = (sys.modules[type(coll).__module__].__doc__ or coll.name).strip().splitlines()[0]
    link = ("its links' own bandwidths" if bandwidth is None
            else f"host link {bandwidth:.6g} B/s")
    lines = [f"{coll.name}: {doc}",
             f"p = {p} ranks, n = {msg.nbytes:.6g} bytes"
             + (" per rank" if coll.kind == "allgather" else "")
             + (" per rank of the result" if coll.kind == "reduce_scatter" else "")
             + f", topology {topo.name}, {link}, latency {latency:.6g} s"]
    cf = closed_form(coll, p, msg, topo)
    if cf is not None:
        if topo.uniform and bandwidth is not None:
            lines.append(f"alpha = {latency:.6g} s, beta = 1/bandwidth = {1 / bandwidth:.6g} s/B")
        lines.append(cf.symbolic)
        lines.append(cf.numeric)
        if getattr(coll, "analytic_only", False):  # NCCL's model: its tuner's table
            lines += coll.tuner_lines(p, msg, topo)
    else:
        lines.append("no closed form here; phases read off the topology:")
        for ph in coll.phases(p, msg, topo):
            c = phase_cost(topo, ph)
            nb = ph.nbytes if not isinstance(ph.nbytes, tuple) else max(ph.nbytes, default=0)
            lines.append(f"  {ph.label}: {ph.repeat} x {len(ph.pairs)} transfers of "
                         f"{nb:.6g} B -> {c.seconds:.6g} s"
                         + ("" if c.symmetric else " (asymmetric)"))
    lines.append(f"simulated ({run.fidelity}, {run.events} events): {run.seconds:.6g} s")
    if not run.exact:
        lines.append(f"an estimate, not exact: {run.note}; --fidelity link runs every flow where its size allows")
    elif run.fidelity == "step":
        lines.append(f"step is exact here: {run.note}")
    return "\n".join(lines)


def explain_auto(runs: list[tuple[str, CollectiveRun]], best: str, best_text: str) -> str:
    """``collective: auto``: every candidate's time and level, the choice, and the chosen
    algorithm's own explanation."""
    lines = ["auto: the fastest allreduce for this message on this topology"]
    lines += [f"  {name}: {r.seconds:.6g} s ({r.fidelity}" + ("" if r.exact else ", estimate")
              + ")" for name, r in runs]
    lines += [f"chosen: {best}", "", best_text]
    return "\n".join(lines)


def bucket_formulas(result: SimResult, point: SimPoint) -> list[dict]:
    """Per bucket of a simulated iteration (:class:`~rsdgc_sim.sim.result.SimResult` of
    ``simulate(profile, point)``): its collective, payload, simulated duration and, where a
    closed form exists (one algorithm on a uniform or structured topology), the closed form's
    value and its formula with the numbers put in; ``None`` where there is none (a bucket
    that mixes dense and sparse tensors, one worker, or a topology without one)."""
    p = point.workers
    out = []
    topos: dict[int, Topology] = {}
    for b in result.buckets:
        name = b.algorithm.removeprefix("auto:")
        entry = {"bucket": b.index, "algorithm": b.algorithm, "bytes": b.wire_bytes,
                 "simulated_s": b.duration, "closed_form_s": None, "formula": None}
        out.append(entry)
        if p > 1 and b.messages:
            _low_rank_formula(entry, b.messages, p, point, topos)
            continue
        if p <= 1 or "+" in name or name == "none":
            continue
        params = _params(name, point)
        coll = make_collective(name, params or None)
        extra = coll.extra_hosts(p)
        if extra not in topos:
            topos[extra] = build_topology(point.topology.name, p, point.bandwidth_bytes_per_s,
                                          point.latency_s, point.topology.params,
                                          extra_hosts=extra)
        cf = closed_form(coll, p, Message(p, float(b.wire_bytes)), topos[extra])
        if cf is not None:
            entry.update(closed_form_s=cf.value, formula=f"{cf.symbolic}; {cf.numeric}")
    return out


def _params(name: str, point: SimPoint) -> dict | None:
    """The parameters collective ``name`` ran with in ``point``: the point's own, or with
    ``collective: nccl`` for its sparse all-gathers, nccl's as nccl_allgather takes them."""
    if name == point.collective:
        return point.collective_params
    if name == "nccl_allgather" and point.collective == "nccl":
        return allgather_params(point.collective_params)
    return None


def _topology(point: SimPoint, coll: Collective, p: int, topos: dict[int, Topology]) -> Topology:
    extra = coll.extra_hosts(p)
    if extra not in topos:
        topos[extra] = build_topology(point.topology.name, p, point.bandwidth_bytes_per_s,
                                      point.latency_s, point.topology.params, extra_hosts=extra)
    return topos[extra]


def _low_rank_formula(entry: dict, messages, p: int, point: SimPoint,
                      topos: dict[int, Topology]) -> None:
    """A two-round (``powersgd``) bucket: its allreduces (the tensors sent whole, P, Q) one
    after the other, so the closed form is the sum of theirs, where each has one."""
    total, parts = 0.0, []
    for what, name, nbytes in messages:
        params = _params(name, point)
        coll = make_collective(name, params or None)
        cf = closed_form(coll, p, Message(p, float(nbytes)), _topology(point, coll, p, topos))
        if cf is None:
            return
        total += cf.value
        parts.append(f"{what} ({name}, n = {nbytes:.6g} B): {cf.symbolic}; {cf.numeric}")
    entry.update(closed_form_s=total, formula=" + ".join(parts))


def explain_iteration(result: SimResult, point: SimPoint) -> str:
    """:func:`bucket_formulas` as text: one line per bucket, the closed form beside the
    simulated time."""
    lines = [f"{result.compressor}, {point.workers} workers: iteration "
             f"{result.iteration_s:.6g} s simulated; per bucket:"]
    for e in bucket_formulas(result, point):
        head = (f"  bucket {e['bucket']}: {e['algorithm']}, {e['bytes']:.6g} B, simulated "
                f"{e['simulated_s']:.6g} s")
        lines.append(head + (f"; closed form {e['closed_form_s']:.6g} s: {e['formula']}"
                             if e["formula"] else "; no closed form"))
    return "\n".join(lines)


__all__ = ["bucket_formulas", "explain", "explain_auto", "explain_iteration"]
