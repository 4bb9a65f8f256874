"""Parameter server: workers push their gradient, servers reduce and send the result back.

The ``shards`` servers are extra hosts (ranks ``p .. p+shards-1``); every worker pushes
``n/shards`` bytes to each server at once, then every server sends its ``n/shards`` bytes
of the result to every worker. A server's link carries ``p`` transfers of ``n/shards``
(incast), a worker's ``shards`` transfers, so each direction takes
``alpha + max(p, shards)/shards · n · beta``; with one server ``T = 2 alpha + 2 p n beta``.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ..topology.graph import Topology
from .base import COLLECTIVES, ClosedForm, Collective, Message, Pairs, Phase, check_count, g

#: the most server shards (the scenario bound on workers)
MAX_SHARDS = 65_536
#: the most transfers of one phase (every worker with every shard) step and link simulate:
#: about 2.5 s and 1 GB at step
MAX_PATTERN_TRANSFERS = 1 << 20


@COLLECTIVES.register("parameter_server", "push to / pull from k server shards (incast)")
class ParameterServer(Collective):
    name = "parameter_server"
    kind = "allreduce"

    def __init__(self, shards: int = 1):
        self.shards = check_count(shards, "collective 'parameter_server': shards", MAX_SHARDS)

    def extra_hosts(self, p: int) -> int:
        return self.shards

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        k = self.shards
        if p * k > MAX_PATTERN_TRANSFERS:
            raise ConfigError(
                f"collective 'parameter_server': {p:,} workers x {k:,} shards = {p * k:,} "
                f"transfers per phase, more than the {MAX_PATTERN_TRANSFERS:,} simulated here "
                f"(step, link); use fewer shards or workers, or fidelity analytic on switch")
        workers = np.repeat(np.arange(p), k)  # every worker with every server
        servers = p + np.tile(np.arange(k), p)
        push, pull = Pairs(workers, servers), Pairs(servers, workers)
        return [Phase("push", ("ps_push", p, k), push, msg.nbytes / k),
                Phase("pull", ("ps_pull", p, k), pull, msg.nbytes / k)]

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        k, n = self.shards, msg.nbytes
        value = 2 * alpha + 2 * max(p, k) / k * n * beta
        return ClosedForm(
            value, "T = 2·alpha + 2·max(p, k)/k·n·beta   (k server shards)",
            f"T = 2·{g(alpha)} + 2·{max(p, k)}/{k}·{g(n)}·{g(beta)} = {g(value)} s")
