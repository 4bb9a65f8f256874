"""Chrome Trace Event format (loads in Perfetto and chrome://tracing) from a SimResult.

One process ("rsdgc-sim iteration"), one thread for the network (each bucket's
collectives) and one per traced worker (the first eight and the slowest); every span is a
complete event (``"ph": "X"``) with microsecond timestamps, categorised ``compute``,
``compression`` or ``communication``. Simulate with ``trace=True`` to get the spans.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .result import SimResult


def chrome_trace(result: SimResult) -> dict[str, Any]:
    """``{"traceEvents": [...], "displayTimeUnit": "ms", "metadata": {...}}``."""
    if result.spans is None:
        raise ConfigError("this result has no spans; simulate(..., trace=True) records them")
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 0, "tid": 0,
         "args": {"name": "rsdgc-sim iteration"}},
    ]
    for w in sorted({s.worker for s in result.spans}):
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": w,
                       "args": {"name": "network" if w < 0 else f"worker {w}"}})
    for s in result.spans:
        events.append({"name": s.name, "cat": s.cat, "ph": "X", "pid": 0, "tid": s.worker,
                       "ts": s.start * 1e6, "dur": s.duration * 1e6})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "metadata": {
            "compressor": result.compressor, "workers": result.workers,
            "topology": result.topology, "collective": result.collective,
            "iteration_s": result.iteration_s, "fidelity": result.fidelity,
        },
    }
