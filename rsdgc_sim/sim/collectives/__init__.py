"""Collective algorithms, one module each, registered in :data:`COLLECTIVES` by name."""

from . import (  # noqa: F401  (registration)
    allgather_recursive_doubling,
    allgather_ring,
    double_binary_tree,
    halving_doubling,
    hierarchical,
    nccl,
    parameter_server,
    ring,
    tree,
)
from .base import COLLECTIVES, ClosedForm, Collective, Message, Phase, make_collective

#: ``auto`` is handled by collective_time and the simulator (it picks among the others);
#: registered for listing
COLLECTIVES.add("auto", None, "the fastest allreduce per call; in a run, per bucket the "
                "cheaper of sparse all-gather and dense allreduce")

__all__ = ["COLLECTIVES", "ClosedForm", "Collective", "Message", "Phase", "make_collective"]
