"""Explanation text for ``collective --explain``: the formula with the numbers put in, or
the phases read off the topology, and how the simulation was run."""

from __future__ import annotations

import sys

from .collectives import Collective, Message
from .fidelity import closed_form
from .runner import CollectiveRun
from .step import phase_cost
from .topology import Topology


def explain(coll: Collective, run: CollectiveRun, p: int, msg: Message, topo: Topology,
            bandwidth: float, latency: float) -> str:
    """One collective: what it does, its closed form (symbolic, then with numbers) or its
    phases at ``step`` fidelity, and the simulated time with the level used."""
    doc = (sys.modules[type(coll).__module__].__doc__ or coll.name).strip().splitlines()[0]
    lines = [f"{coll.name}: {doc}",
             f"p = {p} ranks, n = {msg.nbytes:.6g} bytes"
             + (" per rank" if coll.kind == "allgather" else "")
             + f", topology {topo.name}, host link {bandwidth:.6g} B/s, latency "
               f"{latency:.6g} s"]
    cf = closed_form(coll, p, msg, topo)
    if cf is not None:
        if topo.uniform:
            lines.append(f"alpha = {latency:.6g} s, beta = 1/bandwidth = {1 / bandwidth:.6g} s/B")
        lines.append(cf.symbolic)
        lines.append(cf.numeric)
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
        lines.append(f"an estimate, not exact: {run.note}; --fidelity link runs every flow")
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


__all__ = ["explain", "explain_auto"]
