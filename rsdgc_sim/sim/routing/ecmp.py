"""The ECMP flow hash and the numeric node order: how a flow picks one of several
equal-cost paths (the policy is described in :mod:`rsdgc_sim.sim.topology`)."""

from __future__ import annotations

import re

import numpy as np

_MASK = (1 << 64) - 1
_C0, _C1, _C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def ecmp_hash(src: int, dst: int) -> int:
    """The flow hash of ranks ``src`` -> ``dst``: the splitmix64 finalizer of
    ``(src << 32) + dst``, a 64-bit integer. Path ``ecmp_hash(src, dst) % n`` of the ``n``
    equal-cost paths (in numeric node order) carries the flow."""
    z = ((src << 32) + dst + _C0) & _MASK
    z = ((z ^ (z >> 30)) * _C1) & _MASK
    z = ((z ^ (z >> 27)) * _C2) & _MASK
    return z ^ (z >> 31)


def ecmp_hash_array(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """:func:`ecmp_hash` of arrays of ranks (uint64, element by element)."""
    u = np.uint64
    with np.errstate(over="ignore"):
        z = (src.astype(u) << u(32)) + dst.astype(u) + u(_C0)
        z = (z ^ (z >> u(30))) * u(_C1)
        z = (z ^ (z >> u(27))) * u(_C2)
        return z ^ (z >> u(31))


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key of a node name with its digit runs read as numbers (``h2`` before ``h10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in _DIGITS.split(str(name)) if t)
