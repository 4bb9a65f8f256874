"""What every collective algorithm provides.

A collective is described once, as a list of :class:`Phase` objects: a phase is a
*pattern* of concurrent transfers (``pairs`` of ranks), the bytes each transfer carries,
and how many times the pattern repeats back to back (a ring's ``2(p-1)`` steps are one
phase repeated ``2(p-1)`` times). The three fidelity levels read the same description:

* ``analytic``: :meth:`Collective.closed_form` (alpha-beta formula), where one exists;
* ``step``: one event per phase; the phase's duration comes from the topology (route
  latency plus bytes times the most loaded link's ``flows / bandwidth``), which is exact
  whenever all transfers of a pattern see the same route cost (symmetric patterns);
* ``link``: every transfer a flow in :mod:`rsdgc_sim.sim.network`, with contention and
  rank-local dependencies.

``alpha`` is the one-way host-to-host latency, ``beta`` = 1/bandwidth (s/byte), ``n`` the
message bytes (allreduce) or each rank's contribution (all-gather), ``p`` the ranks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError, TopologyError
from ...registry import Registry
from ...strict import excerpt
from ..topology.graph import Topology

#: name -> Collective subclass
COLLECTIVES: Registry = Registry("collective")


@dataclass(frozen=True)
class Message:
    """What one collective call moves: ``nbytes`` (allreduce: the message; all-gather: the
    largest rank's contribution) and, for all-gather with exact sizes, each rank's bytes."""

    workers: int
    nbytes: float
    per_rank: tuple[float, ...] | None = None

    def sizes(self) -> tuple[float, ...]:
        return self.per_rank if self.per_rank is not None else (self.nbytes,) * self.workers

    @property
    def uniform(self) -> bool:
        return self.per_rank is None or len(set(self.per_rank)) <= 1


class Pairs(Sequence):
    """The ``(src, dst)`` rank pairs of a pattern, held as two integer arrays: a sequence
    of tuples to whoever iterates it, arrays (:attr:`src`, :attr:`dst`) to whoever routes a
    whole pattern at once. Building 65,536 tuples per pattern costs more than routing it."""

    __slots__ = ("src", "dst")

    def __init__(self, src, dst):
        self.src = np.ascontiguousarray(src, dtype=np.int64)
        self.dst = np.ascontiguousarray(dst, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(zip(self.src[i].tolist(), self.dst[i].tolist(), strict=True))
        return int(self.src[i]), int(self.dst[i])

    def __iter__(self):
        return zip(self.src.tolist(), self.dst.tolist(), strict=True)

    def __repr__(self) -> str:
        return f"Pairs({len(self)} pairs)"


class RotatingSizes(tuple):
    """Per-transfer bytes of a phase whose repetitions rotate them (the ring all-gather):
    a tuple aligned with the pattern's pairs for the first repetition; in repetition ``s``
    transfer ``o`` carries entry ``(o - s) mod len``. One tuple of ``p`` sizes stands for
    all ``p-1`` steps, where a tuple per step would hold ``p(p-1)``."""

    __slots__ = ()

    def row(self, s: int) -> RotatedRow:
        """Repetition ``s``'s sizes, aligned with the pairs (a view, O(1))."""
        return RotatedRow(self, s)


class RotatedRow(list):
    """One repetition of :class:`RotatingSizes` as the sequence of sizes the flow runner
    indexes (a ``list`` to it, so that it takes one size per pair; nothing is copied: entry
    ``o`` is read from the rotating sizes when asked for)."""

    __slots__ = ("base", "shift")

    def __init__(self, base: RotatingSizes, shift: int):
        super().__init__()
        self.base = base
        self.shift = shift

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, o):
        if isinstance(o, slice):
            return [self[i] for i in range(*o.indices(len(self)))]
        n = len(self.base)
        if not -n <= o < n:
            raise IndexError(o)
        return self.base[(o % n - self.shift) % n]

    def __iter__(self):
        return (self[o] for o in range(len(self)))

    def __repr__(self) -> str:
        return f"RotatedRow({len(self)} sizes, shift {self.shift})"


@dataclass(frozen=True)
class Phase:
    """A pattern of concurrent transfers repeated ``repeat`` times back to back.

    ``nbytes`` is one size for every transfer or a tuple aligned with ``pairs``; a
    :class:`RotatingSizes` tuple rotates by one transfer each repetition.
    ``chunks > 1`` (ring only): each repetition's block is cut in ``chunks`` pieces that are
    pipelined, so a rank forwards piece ``j`` as soon as it has it."""

    label: str
    key: tuple
    pairs: Sequence[tuple[int, int]]  # a tuple of pairs or :class:`Pairs`
    nbytes: float | tuple[float, ...]
    repeat: int = 1
    chunks: int = 1


@dataclass(frozen=True)
class ClosedForm:
    """A closed form: its value, the symbolic formula and the formula with numbers in."""

    value: float
    symbolic: str
    numeric: str


@lru_cache(maxsize=64)
def shift_pairs(p: int, d: int = 1) -> Pairs:
    """Every rank ``i`` sends to ``(i + d) mod p``."""
    i = np.arange(p)
    return Pairs(i, (i + d) % p)


def g(x: float) -> str:
    """Numbers in explanations: 6 significant digits."""
    return f"{x:.6g}"


class Collective:
    """Base class. Subclasses set ``name``/``kind`` and implement :meth:`phases`."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "allreduce"  # or "allgather"
    #: True when ranks that only wait on their own transfers still move in lockstep on a
    #: symmetric pattern, so ``step`` (phases one after the other) equals ``link``
    lockstep: ClassVar[bool] = True

    def __init__(self, **params: Any):
        if params:
            raise ConfigError(
                f"collective {self.name!r}: unknown parameter(s) {', '.join(sorted(params))}; "
                f"it takes none")

    # -- description ---------------------------------------------------------------------
    def extra_hosts(self, p: int) -> int:
        """Hosts needed besides the ``p`` workers (parameter servers)."""
        return 0

    def check(self, p: int, msg: Message, topo: Topology | None) -> None:
        """Raise ConfigError/TopologyError when the algorithm cannot run here."""

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        raise NotImplementedError

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float,
                    topo: Topology | None) -> ClosedForm | None:
        """The alpha-beta formula on a uniform topology (``switch``), or None."""
        return None

    def closed_form_on(self, p: int, msg: Message, topo: Topology) -> ClosedForm | None:
        """A closed form on a non-uniform but structured topology (e.g. two_level), or
        None."""
        return None

    def dag(self, p: int, msg: Message, topo: Topology):
        """Explicit (ops, deps) for ``link`` fidelity, or None to use the phases' rounds."""
        return None

    def dag_size(self, p: int, msg: Message, topo: Topology | None) -> int | None:
        """The number of operations :meth:`dag` would return (without building them), or
        None when it returns None."""
        return None


def make_collective(name: str, params: dict[str, Any] | None = None) -> Collective:
    """Instantiate a registered collective, checking its parameters by name."""
    cls = COLLECTIVES.get(name)
    if cls is None:
        raise ConfigError(f"collective {name!r} chooses among the others; it is not one itself")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"collective {name!r}: parameters must be a mapping, got "
                          f"{excerpt(params)}")
    params = dict(params)
    sig = inspect.signature(cls.__init__)
    accepted = [k for k in sig.parameters if k != "self" and k != "params"]
    for k in params:
        if k not in accepted:
            raise ConfigError(
                f"collective {name!r}: unknown parameter {excerpt(k)}; accepted: "
                f"{', '.join(accepted) or '(none)'}")
    return cls(**params)


def check_count(value: Any, what: str, limit: int) -> int:
    """An integer parameter in ``[1, limit]`` (a bool is not an integer), else ConfigError
    ``"<what> must be an integer >= 1 and at most <limit>, got <value>"``."""
    if (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit):
        raise ConfigError(f"{what} must be an integer >= 1 and at most {limit:,}, got "
                          f"{excerpt(value)}")
    return value


def log2_exact(p: int) -> int | None:
    """log2(p) when p is a power of two, else None."""
    return p.bit_length() - 1 if p > 0 and p & (p - 1) == 0 else None


def ceil_log2(p: int) -> int:
    return max(0, math.ceil(math.log2(p))) if p > 1 else 0


def group_shape(topo: Topology | None, gpus_per_node: int | None, p: int) -> tuple[int, int]:
    """(nodes, ranks per node) of :func:`need_groups`, without listing the groups when
    ``gpus_per_node`` gives them (O(1) for any ``p``)."""
    if gpus_per_node is not None:
        _split(gpus_per_node, p)
        return p // gpus_per_node, gpus_per_node
    groups = need_groups(topo, None, p)
    return len(groups), len(groups[0])


def _split(gpus_per_node: int, p: int) -> None:
    if gpus_per_node < 1 or p % gpus_per_node:
        raise TopologyError(
            f"gpus_per_node: {p} workers do not split into nodes of {gpus_per_node}")


def need_groups(topo: Topology | None, gpus_per_node: int | None, p: int) -> list[list[int]]:
    """Node groups for two-level algorithms: the parameter, else the topology's."""
    if gpus_per_node is not None:
        _split(gpus_per_node, p)
        return [list(range(k, k + gpus_per_node)) for k in range(0, p, gpus_per_node)]
    if topo is None or topo.groups is None:
        raise ConfigError(
            "hierarchical needs node groups: use the two_level topology or give the "
            "collective parameter gpus_per_node")
    groups = [[i for i in grp if i < p] for grp in topo.groups]
    groups = [grp for grp in groups if grp]
    if len({len(grp) for grp in groups}) != 1:
        raise TopologyError(
            f"hierarchical: nodes hold different numbers of workers "
            f"({sorted({len(grp) for grp in groups})}); use whole nodes")
    return groups
