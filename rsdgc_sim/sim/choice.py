"""Which collective moves a bucket: the one the point names, or with ``auto`` the fastest.

``collective: auto``: the dense part of a bucket goes by the fastest allreduce among the
candidates that apply to the topology and worker count (ring, halving_doubling, tree,
double_binary_tree, and hierarchical where whole nodes exist). ``sparse_collective: auto``:
the sparse part by the faster of ring and recursive-doubling all-gather. Every candidate
is simulated at the point's fidelity; ties go to the first in that order. ``collective:
nccl``: the sparse part goes by ``nccl_allgather`` (with nccl's parameters, less a forced
tree) unless ``sparse_collective`` names another all-gather than ``allgather_ring`` (the
default) or ``auto``.
"""

from __future__ import annotations

from ..errors import ConfigError
from .collectives import Collective, Message, make_collective
from .collectives.nccl import allgather_params
from .config import SimPoint
from .runner import CollectiveRun, CountingEnvironment, auto_candidates, run_collective
from .topology.build import build_topology
from .topology.graph import Topology

SPARSE_AUTO_CANDIDATES = ("allgather_ring", "allgather_recursive_doubling")


class CollectiveChoice:
    """The collectives of one simulated point, with the topologies they run on (built once,
    with room for the extra hosts an algorithm needs) and one SimPy environment whose events
    are counted. ``levels`` lists the fidelity of every collective simulated."""

    def __init__(self, point: SimPoint, env: CountingEnvironment):
        self.point = point
        self.p = point.workers
        self.env = env
        self.levels: list[str] = []
        #: False once any collective was only estimated (``step`` where it is not exact)
        self.exact = True
        self._topo: Topology | None = None
        self._allreduce: dict[float, tuple[Collective, CollectiveRun]] = {}
        self.auto = point.collective == "auto"
        self.sparse_auto = point.sparse_collective == "auto"
        if not self.auto:
            self.dense = make_collective(point.collective, point.collective_params)
            if self.dense.kind != "allreduce":
                raise ConfigError(
                    f"collective: {point.collective!r} is not an allreduce algorithm")
        if point.collective == "nccl" and point.sparse_collective in ("allgather_ring", "auto"):
            # NCCL gathers the sparse payloads too, its tuner choosing (ring or PAT)
            self.sparse_auto = False
            self.sparse = make_collective("nccl_allgather",
                                          allgather_params(point.collective_params))
        elif not self.sparse_auto:
            self.sparse = make_collective(point.sparse_collective)
            if self.sparse.kind != "allgather":
                raise ConfigError(
                    f"sparse_collective: {point.sparse_collective!r} is not an all-gather "
                    f"algorithm; choose allgather_ring, allgather_recursive_doubling, "
                    f"nccl_allgather or auto")

    def topology(self, extra_hosts: int = 0) -> Topology:
        """The point's topology with at least ``extra_hosts`` hosts beyond the workers."""
        pt = self.point
        if self._topo is None or self._topo.n_hosts < self.p + extra_hosts:
            self._topo = build_topology(pt.topology.name, self.p, pt.bandwidth_bytes_per_s,
                                        pt.latency_s, pt.topology.params,
                                        extra_hosts=extra_hosts)
        return self._topo

    def run(self, coll: Collective, msg: Message) -> CollectiveRun:
        r = run_collective(coll, self.p, msg, self.topology(coll.extra_hosts(self.p)),
                           self.point.fidelity, env=self.env)
        self.levels.append(r.fidelity)
        self.exact = self.exact and r.exact
        return r

    def _fastest(self, names, msg: Message) -> tuple[Collective, CollectiveRun]:
        runs = [(c, self.run(c, msg)) for c in map(make_collective, names)]
        return min(runs, key=lambda x: x[1].seconds)

    def allreduce(self, nbytes: float) -> tuple[Collective, CollectiveRun]:
        """The allreduce of ``nbytes`` and its simulated run (simulated once per size)."""
        hit = self._allreduce.get(nbytes)
        if hit is None:
            msg = Message(self.p, nbytes)
            if not self.auto:
                hit = self.dense, self.run(self.dense, msg)
            else:
                hit = self._fastest(auto_candidates(self.topology(), self.p), msg)
            self._allreduce[nbytes] = hit
        return hit

    def allgather(self, msg: Message) -> tuple[Collective, CollectiveRun]:
        """The all-gather of ``msg`` and its simulated run."""
        if not self.sparse_auto:
            return self.sparse, self.run(self.sparse, msg)
        return self._fastest(SPARSE_AUTO_CANDIDATES, msg)


__all__ = ["SPARSE_AUTO_CANDIDATES", "CollectiveChoice"]
