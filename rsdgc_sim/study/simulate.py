"""A scenario's grid simulated: every compressor at every point, one row per run with the
derived metrics (speedup over dense, its range over the profile's quartiles, scaling
efficiency, the buckets' formulas)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..profile.schema import Profile
from ..scenario import Scenario

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
    from ..profile.quartiles import has_spread, quartile_profiles
    from ..sim import simulate
    from ..sim.explain import bucket_formulas
    from ..units import format_bandwidth, format_duration

    say = progress or (lambda _m: None)
    labels = [c.key for c in scenario.compressors]
    dense = scenario.dense_label()
    sim_point = scenario.sim_point
    if scenario.cluster.calibration:  # the links as calibrated, not as nominal
        from ..calibration import calibrated_point, calibration_warnings, load_calibration

        cal = load_calibration(scenario.cluster.calibration)
        for warning in calibration_warnings(cal):  # another host, cores, version or format
            say(f"note: {warning}")

        def sim_point(label, point):
            return calibrated_point(scenario.sim_point(label, point), cal)

    rows: list[dict[str, Any]] = []
    sims: list[Any] = []
    # the profile at its median and, when it has a spread, at its quartiles
    variants = {"median": profile}
    if has_spread(profile):
        variants["low"], variants["high"] = quartile_profiles(profile)
    dense_cache: dict[tuple[str, int, float, float], float] = {}

    def dense_time(workers: int, point, variant: str = "median") -> float:
        k = (variant, workers, point.bandwidth_bytes_per_s, point.latency_s)
        if k not in dense_cache:
            pt = sim_point(dense, point.model_copy(update={"workers": workers}))
            dense_cache[k] = simulate(variants[variant], pt).iteration_s
        return dense_cache[k]

    def times(label: str, point, value: float) -> dict[str, float]:
        """The iteration time under each profile variant (``value``: the median's)."""
        out = {"median": value}
        for v in variants.keys() - {"median"}:
            out[v] = (dense_time(point.workers, point, v) if label == dense
                      else simulate(variants[v], sim_point(label, point)).iteration_s)
        return out

    grid = scenario.grid()
    for i, point in enumerate(grid):
        say(f"simulating point {i + 1}/{len(grid)}: {point.workers} workers, "
            f"{format_bandwidth(point.bandwidth_bytes_per_s)}, "
            f"{format_duration(point.latency_s)} latency")
        for label in labels:
            pt = sim_point(label, point)
            res = simulate(profile, pt, trace=trace)
            if label == dense:
                dense_cache[("median", point.workers, point.bandwidth_bytes_per_s,
                             point.latency_s)] = res.iteration_s
            ts = times(label, point, res.iteration_s)
            it_low, it_high = min(ts.values()), max(ts.values())
            speedup = dense_time(point.workers, point) / res.iteration_s
            # dense and this one under the same profile variant: they share its compute
            sps = [dense_time(point.workers, point, v) / t if t > 0 else None
                   for v, t in ts.items()]
            # None: unbounded (this run takes no time at all under a quartile)
            sp_low = min([speedup, *(x for x in sps if x is not None)])
            sp_high = None if None in sps else max([speedup, *sps])
            sims.append(res)
            sent = res.bytes_sent_per_worker
            rows.append({
                "compressor": label,
                "workers": point.workers,
                "topology": scenario.cluster.topology.name,
                "collective": res.collective,
                "fidelity": res.fidelity,
                "exact": res.exact,
                "bandwidth_bytes_per_s": point.bandwidth_bytes_per_s,
                "latency_s": point.latency_s,
                "iteration_s": res.iteration_s,
                "iteration_s_low": it_low,
                "iteration_s_high": it_high,
                "compute_s": res.compute_s,
                "compression_s": res.compression_s,
                "communication_s": res.communication_s,
                "exposed_communication_s": res.exposed_communication_s,
                "bytes_sent_per_worker": sent,
                "bytes_transmitted_per_worker": res.bytes_transmitted_per_worker,
                "compression_ratio": profile.dense_bytes / sent if sent else None,
                "speedup_vs_dense": speedup,
                "speedup_vs_dense_low": sp_low,
                "speedup_vs_dense_high": sp_high,
                "scaling_efficiency": dense_time(1, point) / res.iteration_s,
                "samples_per_s": point.workers * scenario.batch_size / res.iteration_s,
                # each bucket's collective: simulated, and the closed form where one exists
                "buckets": bucket_formulas(res, pt),
            })
    return rows, sims
