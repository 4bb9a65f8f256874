"""TEMPORARY: re-exports for simulate.py and sim/__init__.py until they import from the
modules below (then delete this file). Nothing else should import it."""

from .collective_time import CollectiveResult, collective_time
from .fidelity import FIDELITIES, most_detailed, resolve_fidelity
from .runner import (
    AUTO_CANDIDATES,
    CollectiveRun,
    CountingEnvironment,
    auto_candidates,
    run_collective,
)
from .step import phase_time

__all__ = ["AUTO_CANDIDATES", "FIDELITIES", "CollectiveResult", "CollectiveRun",
           "CountingEnvironment", "auto_candidates", "collective_time", "most_detailed",
           "phase_time", "resolve_fidelity", "run_collective"]
