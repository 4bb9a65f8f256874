"""The use of a calibration by ``emulate``: which one (given, the scenario's, or measured
now at the scenario's bandwidths with the interference of its model and threads), what it
says about this machine (another host, cores or version), and the link values and
interference factor it gives a grid point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..calibration import Calibration, calibration_warnings, load_calibration


@dataclass(frozen=True)
class LinkValues:
    bandwidth_bytes_per_s: float
    latency_s: float
    interference_factor: float


def choose_calibration(scenario, given: Calibration | str | Path | None, calibrate: bool,
                       rates: list[float], threads: int,
                       say: Callable[[str], None]) -> Calibration | None:
    """``given`` (a calibration or its file), else the scenario's ``cluster.calibration``,
    else with ``calibrate`` one measured now (links at ``rates`` and the interference of
    the scenario's model with ``threads`` per rank), else None (nominal values, k = 0)."""
    if isinstance(given, Calibration):
        return given
    if given is not None:
        return load_calibration(given)
    path = getattr(scenario.cluster, "calibration", None)
    if path:
        return load_calibration(path)
    if not calibrate:
        return None
    from .calibrate import InterferenceSpec, calibrate_links

    say("calibrating the links and the interference (2 ranks)")
    spec = InterferenceSpec(
        model=scenario.model.name, num_classes=scenario.model.num_classes,
        input_size=scenario.model.input_size, batch_size=scenario.batch_size,
        threads=threads, seed=scenario.seed,
    )  # fmt: skip
    return calibrate_links(sorted(set(rates)), repeats=3, progress=say, interference=spec)


def calibration_notes(cal: Calibration | None, mode: str) -> list[str]:
    if cal is None:
        return ["no calibration: predicting with the scenario's nominal links, no interference"]
    notes = calibration_warnings(cal)
    if cal.source == "loopback" and mode == "netns":
        notes.append("calibration was measured on loopback, not on emulated links")
    return notes


def link_values(cal: Calibration | None, bandwidth_bytes_per_s: float,
                latency_s: float) -> LinkValues:
    """What the prediction uses at a nominal point: the calibrated link and interference,
    or the nominal link and no interference without a calibration."""
    if cal is None:
        return LinkValues(bandwidth_bytes_per_s, latency_s, 0.0)
    bw, lat = cal.link(bandwidth_bytes_per_s, latency_s)
    return LinkValues(bw, lat, cal.interference(bandwidth_bytes_per_s))
