"""The predictor: the simulator's iteration time for an emulated case, two ways.

* **prediction** (:func:`predict_before`): what a user gets before running: the profile
  measured beforehand in its own process (:mod:`.profile_alone`, or a given profile file)
  and the calibration's link values and interference factor (:func:`rsdgc_sim.calibration.apply_calibration`); nothing
  measured in the run it predicts.
* **composition** (:func:`compose_from_run`): the same simulator fed with what the run
  itself measured (the profile's per-layer shape, its totals replaced): compute scaled to
  the run's ``no_sync`` iterations (DDP's own overheads,
  the CPU shared as it is), compression and decompression scaled to the hook's totals, and
  the per-message latency probed in the run when it exceeds the calibrated one. It checks
  how the simulator composes compute, compression and communication, not how well it
  predicts.

Both simulate the DDP hook as it runs: compression pausing backward
(``ddp.compression_blocks_backward``).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from ..calibration import LinkValues, on_link

if TYPE_CHECKING:  # types only
    from ..profile.schema import Profile
    from ..scenario import Scenario
    from ..sim.config import SimPoint


def _simulate(profile: Profile, point: SimPoint) -> float:
    from ..sim import simulate  # lazy: imports numpy, networkx, simpy, yaml

    return float(simulate(profile, point).iteration_s)


def sim_point(scenario: Scenario, label: str, workers: int, link: LinkValues, *, blocking: bool = True):
    """The scenario's SimPoint for ``label`` at ``workers`` on ``link`` (bandwidth, latency
    and interference factor as given)."""
    from ..scenario.model import GridPoint  # lazy: imports numpy, networkx, simpy, yaml

    point = scenario.sim_point(label, GridPoint(
        workers=workers, bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
        latency_s=link.latency_s))  # fmt: skip
    ddp = point.ddp.model_copy(update={"compression_blocks_backward": blocking})
    return on_link(point.model_copy(update={"ddp": ddp}), link)


def predict_before(profile: Profile, scenario: Scenario, label: str, workers: int, link: LinkValues) -> float:
    """The prediction from a profile measured before the run and the calibration."""
    return _simulate(profile, sim_point(scenario, label, workers, link))


def compute_s(profile: Profile) -> float:
    """Forward + backward + optimizer of the profile's first device."""
    d = profile.devices[0]
    return d.forward_s + d.backward_s + d.optimizer_s


def compression_totals(profile: Profile, label: str, workers: int) -> tuple[float, float]:
    """``label``'s compression and decompression per iteration in ``profile``, counted as
    the simulator counts them (a sparse tensor's decompression plus ``workers - 1``
    accumulations)."""
    costs = profile.devices[0].compression[label]
    comp = sum(c.compress_s for c in costs.values())
    dec = sum(c.decompress_s + ((workers - 1) * c.accumulate_s if c.sparse else 0.0)
              for c in costs.values())
    return comp, dec


def with_compute_scale(profile: Profile, factor: float):
    """The profile with forward, backward, gradient-ready and optimizer times times
    ``factor`` (compression costs are set separately)."""
    dev = profile.devices[0]
    new = dev.model_copy(update={
        "forward_s": dev.forward_s * factor, "backward_s": dev.backward_s * factor,
        "optimizer_s": dev.optimizer_s * factor,
        "grad_ready_s": {n: t * factor for n, t in dev.grad_ready_s.items()},
    })  # fmt: skip
    return profile.model_copy(update={"devices": [new]})


def with_measured_compression(profile: Profile, label: str, compress_s: float, decompress_s: float,
                              workers: int):  # fmt: skip
    """The profile with ``label``'s per-tensor compression and decompression times scaled so
    that one iteration's totals equal what the hook measured during training (under the
    same CPU contention): compression sums to ``compress_s``; decompression, counted as the
    simulator counts it (a dense tensor's ``decompress_s``; a sparse one's ``decompress_s``
    plus ``workers - 1`` times ``accumulate_s``), to ``decompress_s``."""
    dev = profile.devices[0]
    costs = dev.compression[label]
    total_c, total_d = compression_totals(profile, label, workers)
    fc = compress_s / total_c if total_c > 0 else 0.0
    fd = decompress_s / total_d if total_d > 0 else 0.0
    new = {}
    for n, c in costs.items():
        new[n] = c.model_copy(update={"compress_s": c.compress_s * fc,
                                      "decompress_s": c.decompress_s * fd,
                                      "accumulate_s": c.accumulate_s * fd})
    comp = dict(dev.compression)
    comp[label] = new
    return profile.model_copy(update={"devices": [dev.model_copy(update={"compression": comp})]})


def run_latency_s(results: list[dict[str, Any]], workers: int) -> float:
    """Per-message latency measured in the run: a ring allreduce of one float is
    ``2 (p - 1)`` messages (median over probes, then over ranks)."""
    probe = statistics.median(statistics.median(r["small_allreduce_s"]) for r in results)
    return probe / (2 * (workers - 1)) if workers > 1 else 0.0


def compose_from_run(run_profile: Profile, scenario: Scenario, label: str, workers: int, link: LinkValues, *,
                     local_s: float, compress_s: float, decompress_s: float,
                     blocking: bool = True) -> tuple[float, float]:
    """The composition: ``(iteration_s, in-run compute_s)`` from ``run_profile`` (the
    profile's per-layer shape) with compute scaled to the run's ``no_sync`` iteration time ``local_s`` and the hook's
    measured compression and decompression."""
    compute = compute_s(run_profile)
    scale = local_s / compute if compute > 0 else 1.0
    prof = with_compute_scale(run_profile, scale)
    prof = with_measured_compression(prof, label, compress_s, decompress_s, workers)
    return _simulate(prof, sim_point(scenario, label, workers, link, blocking=blocking)), \
        compute * scale
