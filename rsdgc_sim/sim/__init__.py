"""The network simulator: topologies, collectives, links with contention, DDP buckets.

Never imports torch: a saved :class:`~rsdgc_sim.profile.schema.Profile` is enough.

>>> from rsdgc_sim.sim import collective_time
>>> round(collective_time("ring", 4, 1e6, 1.25e9, 5e-6).simulated_s, 9)
0.00123

The exports are loaded on first use: importing :mod:`rsdgc_sim.sim.config` (what a scenario
needs) imports neither numpy nor simpy, the topologies nor the collectives.
"""

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

#: each export -> the module of this package that defines it
_LAZY = {
    "CollectiveResult": "collective_time", "collective_time": "collective_time",
    "COLLECTIVES": "collectives",
    "DDPConfig": "config", "SimPoint": "config", "StragglerConfig": "config",
    "TopologySpec": "config",
    "FIDELITIES": "fidelity",
    "BucketResult": "result", "SimResult": "result", "Span": "result",
    "simulate": "simulate",
    "TOPOLOGIES": "topology", "Topology": "topology", "build_topology": "topology",
    "chrome_trace": "trace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(ModuleType):
    """This package, where two exports share their module's name (``simulate``,
    ``collective_time``): importing such a submodule binds it here as an attribute, which
    would hide the export from ``__getattr__``; the export is bound instead, as the eager
    ``from .simulate import simulate`` did."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and _LAZY.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "COLLECTIVES", "FIDELITIES", "TOPOLOGIES", "BucketResult", "CollectiveResult", "DDPConfig",
    "SimPoint", "SimResult", "Span", "StragglerConfig", "Topology", "TopologySpec",
    "build_topology", "chrome_trace", "collective_time", "simulate",
]
