"""The profile a prediction starts from, measured *before* the emulation and apart from it:
the worker's ``profile`` task in a process of its own (no other rank running), pinned to
the cores of rank 0 with the threads each emulated rank will have: what a user gets from
``rsdgc-sim profile`` on a rank's share of the machine."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .launcher import launch, python_argv

if TYPE_CHECKING:  # types only
    from ..scenario import Scenario


def measure_profile_alone(scenario: Scenario, compressors: list[dict[str, Any]], threads: int,
                          cpus: list[int], timeout_s: float = 600.0):
    """A :class:`~rsdgc_sim.profile.schema.Profile` of ``scenario``'s model and
    ``compressors`` measured in one process with ``threads`` torch threads on ``cpus``."""
    from ..profile.schema import Profile  # lazy: imports pydantic

    spec = {
        "task": "profile", "model": scenario.model.name,
        "num_classes": scenario.model.num_classes, "input_size": scenario.model.input_size,
        "batch_size": scenario.batch_size, "seed": scenario.seed, "threads": threads,
        "cpus": [cpus], "compressors": compressors, "profile_warmup": scenario.profile.warmup,
        "profile_iterations": max(2, scenario.profile.iterations),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rsdgc-prof-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        res = launch(python_argv("rsdgc_sim.emulate.worker", str(path)), 1,
                     timeout_s=timeout_s, workdir=Path(tmp) / "ranks")  # fmt: skip
    return Profile.model_validate(res[0]["profile"])
