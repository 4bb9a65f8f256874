"""``torus2d``: a rows x cols 2-D torus of hosts (a direct network)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ...errors import TopologyError
from ..routing import TorusRouter
from .graph import Topology, make_table, node_names
from .guards import TopologySize
from .params import MAX_COUNT, TopologyParams, register_generator


class Torus2dParams(TopologyParams):
    #: rows x cols = hosts; unset: the most square factoring
    rows: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    cols: int | None = Field(default=None, ge=1, le=MAX_COUNT)

    def size(self, hosts: int) -> TopologySize:
        return TopologySize(hosts, 2 * hosts)


def _near_square(n: int) -> tuple[int, int]:
    r = int(math.isqrt(n))
    while n % r:
        r -= 1
    return r, n // r


@register_generator("torus2d", "rows x cols 2-D torus of hosts (direct network)", Torus2dParams)
def torus2d(hosts: int, bandwidth: float, latency: float, rows: int | None = None,
            cols: int | None = None) -> Topology:
    """Host ``(r, c)`` is linked to ``(r±1, c)`` and ``(r, c±1)`` with wrap-around;
    ``rows x cols`` must equal the number of hosts (default: the most square factoring)."""
    if rows is None and cols is None:
        rows, cols = _near_square(hosts)
    elif rows is None:
        rows = hosts // cols if cols and hosts % cols == 0 else 0
    elif cols is None:
        cols = hosts // rows if rows and hosts % rows == 0 else 0
    if not rows or not cols or rows * cols != hosts:
        raise TopologyError(
            f"workers: {hosts} workers do not fit a torus2d of rows={rows} x cols={cols}")
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    parts = []
    # along a row (c -> c+1), along a column (r -> r+1), with wrap-around; a dimension of
    # 2 has one link per pair (not two), one of 1 none
    for n, nxt, cond in ((cols, r * cols + (c + 1) % cols, c < (cols if cols > 2 else 1)),
                         (rows, ((r + 1) % rows) * cols + c, r < (rows if rows > 2 else 1))):
        if n > 1:
            parts.append(((r * cols + c)[cond], nxt[cond], bandwidth, latency))
    return Topology("torus2d", table=make_table(node_names("h", hosts), hosts, parts),
                    params={"rows": rows, "cols": cols},
                    router=lambda t: TorusRouter(t, rows, cols))
