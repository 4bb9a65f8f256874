"""A scenario's grid simulated: every compressor at every point, one row per run with the
derived metrics (speedup over dense, its range over the profile's quartiles, scaling
efficiency, the buckets' formulas)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..calibration import calibrated_point, calibration_warnings, load_calibration
from ..profile.quartiles import has_spread, quartile_profiles
from ..profile.schema import Profile
from ..scenario import Scenario
from ..scenario.model import GridPoint
from ..sim import simulate
from ..sim.config import SimPoint
from ..sim.explain import bucket_formulas
from ..sim.result import SimResult
from ..units import format_bandwidth, format_duration

Progress = Callable[[str], None]


def simulate_scenario(
    scenario: Scenario,
    profile: Profile,
    trace: bool = False,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Simulate every compressor at every grid point; rows carry the derived metrics.

    * ``speedup_vs_dense``: the dense (``none``) iteration time at the same point / this one;
    * ``iteration_s_low`` / ``_high``: the least and greatest iteration time simulated with
      the profile at its median and at its lower and upper quartile
      (:mod:`rsdgc_sim.profile.quartiles`; a hook's scheduling can reorder work, so the
      time is not monotone in every duration); equal to ``iteration_s`` for a profile
      without spread (an estimate);
    * ``speedup_vs_dense_low`` / ``_high``: the least and greatest speedup over the same
      three profiles, dense and this one simulated with the same profile (they share its
      forward, backward and optimizer: a slow backward slows both); ``_high`` is None when
      this iteration takes no time under a quartile. Dense's own row: 1, under any profile;
    * ``bytes_sent_per_worker``: the payload a worker contributes per iteration;
      ``bytes_transmitted_per_worker``: what leaves its NIC (a ring all-gather forwards the
      other p - 1 payloads too);
    * ``scaling_efficiency``: dense iteration time at one worker (same links) / this one:
      the weak-scaling efficiency, since the batch is per worker;
    * ``samples_per_s``: workers x batch_size / iteration_s;
    * ``buckets``: per bucket its collective, bytes and simulated time, beside the closed
      form's time and formula where one exists (:func:`rsdgc_sim.sim.explain.bucket_formulas`).

    With ``cluster.calibration`` the simulated links are the calibrated ones (rows keep the
    nominal bandwidth and latency of the grid point), and backward that overlaps a
    collective is stretched by the calibrated interference factor.
    """
    say = progress or (lambda _m: None)
    grid_sim = _GridSimulator(scenario, profile, _sim_point(scenario, say))
    rows: list[dict[str, Any]] = []
    sims: list[Any] = []
    grid = scenario.grid()
    for i, point in enumerate(grid):
        say(f"simulating point {i + 1}/{len(grid)}: {point.workers} workers, "
            f"{format_bandwidth(point.bandwidth_bytes_per_s)}, "
            f"{format_duration(point.latency_s)} latency")
        for c in scenario.compressors:
            row, res = grid_sim.run(c.key, point, trace)
            sims.append(res)
            rows.append(row)
    return rows, sims


def _sim_point(scenario: Scenario, say: Progress) -> Callable[[str, GridPoint], SimPoint]:
    """``(label, grid point) -> simulator point``: the scenario's, or with
    ``cluster.calibration`` the links as calibrated, not as nominal (its warnings said)."""
    if not scenario.cluster.calibration:
        return scenario.sim_point

    cal = load_calibration(scenario.cluster.calibration)
    for warning in calibration_warnings(cal):  # another host, cores, version or format
        say(f"note: {warning}")

    def sim_point(label: str, point: GridPoint) -> SimPoint:
        return calibrated_point(scenario.sim_point(label, point), cal)

    return sim_point


class _GridSimulator:
    """Simulates one compressor at one grid point into its row: with the profile at its
    median and, when it has a spread, at its quartiles; the dense reference of each point,
    worker count and profile variant simulated once and cached."""

    def __init__(self, scenario: Scenario, profile: Profile,
                 sim_point: Callable[[str, GridPoint], SimPoint]):
        self.simulate = simulate
        self.scenario = scenario
        self.profile = profile
        self.sim_point = sim_point
        self.dense = scenario.dense_label()
        self.variants = {"median": profile}
        if has_spread(profile):
            self.variants["low"], self.variants["high"] = quartile_profiles(profile)
        self.dense_cache: dict[tuple[str, int, float, float], float] = {}

    def dense_time(self, workers: int, point: GridPoint, variant: str = "median") -> float:
        """The dense iteration time at ``point`` with ``workers`` workers, profile ``variant``."""
        k = (variant, workers, point.bandwidth_bytes_per_s, point.latency_s)
        if k not in self.dense_cache:
            pt = self.sim_point(self.dense, point.model_copy(update={"workers": workers}))
            self.dense_cache[k] = self.simulate(self.variants[variant], pt).iteration_s
        return self.dense_cache[k]

    def times(self, label: str, point: GridPoint, value: float) -> dict[str, float]:
        """The iteration time under each profile variant (``value``: the median's)."""
        out = {"median": value}
        for v in self.variants.keys() - {"median"}:
            out[v] = (self.dense_time(point.workers, point, v) if label == self.dense
                      else self.simulate(self.variants[v], self.sim_point(label, point)).iteration_s)
        return out

    def run(self, label: str, point: GridPoint, trace: bool) -> tuple[dict[str, Any], SimResult]:
        """Compressor ``label`` at grid ``point``: its row and the simulator's result."""
        pt = self.sim_point(label, point)
        res = self.simulate(self.profile, pt, trace=trace)
        if label == self.dense:
            self.dense_cache[("median", point.workers, point.bandwidth_bytes_per_s,
                              point.latency_s)] = res.iteration_s
        ts = self.times(label, point, res.iteration_s)
        speedup = self.dense_time(point.workers, point) / res.iteration_s
        # dense and this one under the same profile variant: they share its compute
        sps = [self.dense_time(point.workers, point, v) / t if t > 0 else None
               for v, t in ts.items()]
        # None: unbounded (this run takes no time at all under a quartile)
        speedups = (speedup, min([speedup, *(x for x in sps if x is not None)]),
                    None if None in sps else max([speedup, *sps]))
        return self._row(label, point, pt, res, ts, speedups), res

    def _row(self, label: str, point: GridPoint, pt: SimPoint, res: SimResult, ts: dict[str, float],
             speedups: tuple[float, float, float | None]) -> dict[str, Any]:
        """The row of one run: the point, the simulator's times and bytes, and the metrics
        derived from them (see :func:`simulate_scenario`)."""
        speedup, sp_low, sp_high = speedups
        sent = res.bytes_sent_per_worker
        return {
            "compressor": label,
            "workers": point.workers,
            "topology": self.scenario.cluster.topology.name,
            "collective": res.collective,
            "fidelity": res.fidelity,
            "exact": res.exact,
            "bandwidth_bytes_per_s": point.bandwidth_bytes_per_s,
            "latency_s": point.latency_s,
            "iteration_s": res.iteration_s,
            "iteration_s_low": min(ts.values()),
            "iteration_s_high": max(ts.values()),
            "compute_s": res.compute_s,
            "compression_s": res.compression_s,
            "communication_s": res.communication_s,
            "exposed_communication_s": res.exposed_communication_s,
            "bytes_sent_per_worker": sent,
            "bytes_transmitted_per_worker": res.bytes_transmitted_per_worker,
            "compression_ratio": self.profile.dense_bytes / sent if sent else None,
            "speedup_vs_dense": speedup,
            "speedup_vs_dense_low": sp_low,
            "speedup_vs_dense_high": sp_high,
            "scaling_efficiency": self.dense_time(1, point) / res.iteration_s,
            "samples_per_s": point.workers * self.scenario.batch_size / res.iteration_s,
            # each bucket's collective: simulated, and the closed form where one exists
            "buckets": bucket_formulas(res, pt),
        }
