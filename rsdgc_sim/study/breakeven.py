"""Break-even: the value of one scenario field at which compression stops (or starts)
paying off, per compressor, by bisection on the simulator.

>>> from rsdgc_sim.study.breakeven import find_breakeven          # doctest: +SKIP
>>> find_breakeven(scenario, "cluster.bandwidth", profile_for=lambda sc: prof)  # doctest: +SKIP

For each compressor (not the dense reference) the speedup over dense is ``s(v) = dense
iteration / compressed iteration`` at value ``v`` of the path. The curve is first sampled
at :data:`SAMPLES` values from ``lo`` to ``hi`` (log-spaced for bandwidth, latency,
workers, and any positive range wider than 10x; integers where the field is one); the first
interval where ``s - 1`` changes sign is then bisected (geometrically on a log scale) to a
relative width of ``rtol``, or down to two neighbouring integers, where the break-even is
the first integer on the far side. No sign change in the range: ``breakeven`` is None.

**The closed form it is checked against.** ``p`` workers on one switch, latency 0, no
overlap (communication after backward), free compression, a gradient of ``N`` fp32 values.
Dense: a ring allreduce sends ``2 (p - 1) / p`` of the message per worker,
``T_dense = 2 (p - 1)/p * 4 N / B``. Sparse at density ``d``: each worker contributes ``d N``
values as 4-byte values plus 4-byte indices, ``8 d N`` bytes, and a ring all-gather forwards
the ``p - 1`` other payloads, ``T_sparse = (p - 1) * 8 d N / B``. Compute is the same on
both sides, so ``s > 1`` exactly when ``T_sparse < T_dense``:
``8 d N (p - 1) < 8 N (p - 1) / p``, i.e. ``d < 1 / p``. The break-even density is
``1 / p`` (and at density ``d`` the break-even worker count is ``1 / d``), whatever the
bandwidth and the model size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..progress import Transient
from ..scenario import Scenario
from ..scenario.sweep import check_path, expand_sweep, split_path
from ..sim.simulate import simulate
from ..strict import validation_message
from ..units import bandwidth_text, duration_text

#: values sampled for the curve before bisecting
SAMPLES = 13
#: relative width at which a continuous bisection stops
RTOL = 1e-6
#: bisection steps at most (2^-60: far below RTOL on any range a scenario accepts)
MAX_STEPS = 60
#: the cluster grid axes (a single value is set directly, no profile needed)
GRID_PATHS = {"cluster.workers": "workers", "cluster.bandwidth": "bandwidth",
              "cluster.latency": "latency"}
#: default ranges of the grid axes (SI units) and of a density
DEFAULT_RANGES = {
    "cluster.workers": (2, 1024),
    "cluster.bandwidth": (1.25e7, 1.25e11),   # 100 Mbit/s to 1 Tbit/s
    "cluster.latency": (1e-6, 1e-2),          # 1 us to 10 ms
}
DENSITY_RANGE = (1e-4, 1.0)
#: what a path changes that a profile depends on (a new profile per value)
PROFILE_FIELDS = ("model", "batch_size", "device", "seed", "profile", "compressors")


@dataclass
class Breakeven:
    """One compressor's break-even on ``path``: the value (None when the speedup does not
    cross 1 in ``[lo, hi]``), whether compression ``stops`` or ``starts`` paying off as the
    value grows, and the sampled curve ``[(value, speedup), ...]``."""

    compressor: str
    path: str
    breakeven: float | int | None
    direction: str | None
    lo: float
    hi: float
    curve: list[tuple[float, float]] = field(default_factory=list)
    simulations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"compressor": self.compressor, "path": self.path, "breakeven": self.breakeven,
                "direction": self.direction, "lo": self.lo, "hi": self.hi,
                "curve": [list(p) for p in self.curve]}


def _with_unit(path: str, value: Any) -> Any:
    """A grid axis's SI value written with its unit (the schema requires one), exactly."""
    if path == "cluster.bandwidth":
        return bandwidth_text(value)
    if path == "cluster.latency":
        return duration_text(value)
    return value


def _with_units(cluster: dict[str, Any]) -> dict[str, Any]:
    """A validated cluster section's dump, its bandwidths and latencies with their units."""
    return {**cluster, "bandwidth": [bandwidth_text(b) for b in cluster["bandwidth"]],
            "latency": [duration_text(t) for t in cluster["latency"]]}


def _base_value(scenario: Scenario, path: str) -> Any:
    """The scenario's current value at ``path`` (the first of a grid axis list)."""

    node: Any = scenario.model_dump(mode="json")
    for p in split_path(path):
        try:
            node = node[p if isinstance(node, list) else str(p)]
        except (KeyError, IndexError, TypeError):
            return None
    return node[0] if path in GRID_PATHS and isinstance(node, list) else node


def default_range(scenario: Scenario, path: str) -> tuple[float, float]:
    """``lo, hi`` when not given: the grid axes' and a density's defaults."""
    if path in DEFAULT_RANGES:
        return DEFAULT_RANGES[path]
    if path.endswith(".density"):
        return DENSITY_RANGE
    raise ConfigError(f"--vary {path}: give the range with --lo and --hi (there is no default "
                      f"for this path; defaults: {', '.join(DEFAULT_RANGES)}, *.density)")


def is_integer_path(scenario: Scenario, path: str) -> bool:
    v = _base_value(scenario, path)
    return path == "cluster.workers" or (isinstance(v, int) and not isinstance(v, bool))


def check_single_point(scenario: Scenario, path: str) -> None:
    """The scenario must be one point but for ``path``: refuse other lists and sweeps."""
    multi = [f"cluster.{name} ({len(getattr(scenario.cluster, name))} values)"
             for p, name in GRID_PATHS.items()
             if p != path and len(getattr(scenario.cluster, name)) > 1]
    if getattr(scenario, "sweep", None):
        multi += [f"sweep {p}" for p in scenario.sweep]
    if multi:
        raise ConfigError(f"breakeven varies {path} alone; this scenario also varies "
                          f"{', '.join(multi)}: give one value each")


class _Study:
    """Speedups over dense at one value of the path, every compressor at once, memoised."""

    def __init__(self, scenario: Scenario, path: str, profile_for: Callable[[Any], Any]):
        self.base, self.path, self.profile_for = scenario, path, profile_for
        self.grid = path in GRID_PATHS
        if not self.grid:
            try:
                check_path(path, scenario.model_dump(mode="json", exclude={"sweep"}), Scenario)
            except ConfigError as e:
                raise ConfigError(f"--vary {str(e).removeprefix('sweep: ')}") from None
        self.needs_profile = not self.grid and path.split(".")[0] in PROFILE_FIELDS
        self._profiles: dict[str, Any] = {}
        self._memo: dict[Any, list[float]] = {}
        self.simulations = 0

    def scenario_at(self, value: Any):
        """The scenario with the path at ``value``, checked by the strict schema (a value
        outside a field's limits is a ConfigError naming the path, as in a scenario file)."""
        if self.grid:
            name = GRID_PATHS[self.path]
            cluster = type(self.base.cluster)
            try:
                checked = cluster.model_validate({**_with_units(self.base.cluster.model_dump()),
                                                  name: [_with_unit(self.path, value)]})
            except ValidationError as e:
                raise ConfigError(f"--vary {self.path} = {value:.6g}: "
                                  f"{validation_message(e, cluster)}") from None
            return self.base.model_copy(update={"cluster": checked})
        swept = self.base.model_copy(update={"sweep": {self.path: [value]}})
        return expand_sweep(swept, source=f"--vary {self.path}")[0].scenario

    def _profile(self, sc: Scenario):
        key = sc.model_dump_json(include=set(PROFILE_FIELDS)) if self.needs_profile else ""
        if key not in self._profiles:
            self._profiles[key] = self.profile_for(sc)
        return self._profiles[key]

    def speedups(self, value: Any) -> list[float]:
        """Speedup over dense of each compressor (scenario order, dense excluded)."""
        if value in self._memo:
            return self._memo[value]

        sc = self.scenario_at(value)
        prof = self._profile(sc)
        point = sc.grid()[0]
        dense = simulate(prof, sc.sim_point(sc.dense_label(), point)).iteration_s
        out = []
        for c in sc.compressors:
            if c.key == sc.dense_label():
                continue
            out.append(dense / simulate(prof, sc.sim_point(c.key, point)).iteration_s)
            self.simulations += 1
        self.simulations += 1
        self._memo[value] = out
        return out


def _samples(lo: float, hi: float, log: bool, integer: bool, n: int) -> list[Any]:
    if log:
        vals = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (n - 1))
                for i in range(n)]
    else:
        vals = [lo + i * (hi - lo) / (n - 1) for i in range(n)]
    vals[0], vals[-1] = lo, hi
    if integer:
        return sorted({int(round(v)) for v in vals})
    return vals


def _side(s: float) -> int:
    return (s > 1.0) - (s < 1.0)


def _bisect(f: Callable[[Any], float], a: Any, b: Any, log: bool, integer: bool,
            rtol: float) -> Any:
    """Bisect [a, b] where ``f(a) - 1`` and ``f(b) - 1`` differ in sign; a continuous
    result is the interval's (geometric) middle, an integer one the first integer on
    ``b``'s side."""
    sa = _side(f(a))
    for _ in range(MAX_STEPS):
        if integer:
            if b - a <= 1:
                return b
            mid = int(round(math.sqrt(a * b))) if log else (a + b) // 2
            mid = min(max(mid, a + 1), b - 1)
        else:
            if abs(b - a) <= rtol * max(abs(a), abs(b)):
                break
            mid = math.sqrt(a * b) if log else (a + b) / 2
        if _side(f(mid)) == sa:
            a = mid
        else:
            b = mid
    return b if integer else (math.sqrt(a * b) if log else (a + b) / 2)


def find_breakeven(scenario: Scenario, path: str, profile_for: Callable[[Any], Any],
                   lo: float | None = None, hi: float | None = None, samples: int = SAMPLES,
                   rtol: float = RTOL, progress: Callable[[str], None] | None = None
                   ) -> list[Breakeven]:
    """Per compressor of ``scenario``, where its speedup over dense crosses 1 as ``path``
    goes from ``lo`` to ``hi`` (module docstring). ``profile_for(scenario) -> Profile``
    gives the profile of a scenario (called once for a grid axis, once per value for a
    path the profile depends on, such as ``compressors.1.density``)."""
    say = progress or (lambda _m: None)
    study = _Study(scenario, path, profile_for)  # a path that does not exist: first
    check_single_point(scenario, path)
    dlo, dhi = (None, None) if lo is not None and hi is not None else default_range(scenario, path)
    lo = dlo if lo is None else lo
    hi = dhi if hi is None else hi
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(f"--lo {lo:g} and --hi {hi:g}: need finite lo < hi")
    integer = is_integer_path(scenario, path)
    if integer:
        lo, hi = int(math.ceil(lo)), int(math.floor(hi))
        if lo >= hi:
            raise ConfigError(f"--lo and --hi: no two integers between them for {path}")
    for end in (lo, hi):  # both ends within the field's limits before anything runs
        study.scenario_at(end)
    log = lo > 0 and (path in GRID_PATHS or hi / lo >= 10)
    if path == "cluster.latency" and lo == 0:
        log = False
    values = _samples(lo, hi, log, integer, max(3, samples))
    curves = []
    for i, v in enumerate(values):
        say(Transient(f"breakeven: {path} = {v:.6g} ({i + 1}/{len(values)})"))
        curves.append(study.speedups(v))
    labels = [c.key for c in scenario.compressors if c.key != scenario.dense_label()]
    if not labels:
        raise ConfigError("the scenario has no compressor besides the dense reference")
    out = []
    for j, label in enumerate(labels):
        curve = [(v, cur[j]) for v, cur in zip(values, curves, strict=True)]
        found, direction = None, None
        for (a, sa), (b, sb) in zip(curve, curve[1:], strict=False):
            if _side(sa) != _side(sb) and _side(sa) != 0:
                say(Transient(f"breakeven: bisecting {label} between {a:.6g} and {b:.6g}"))
                found = _bisect(lambda v, j=j: study.speedups(v)[j], a, b, log, integer, rtol)
                direction = "stops paying off" if sa > 1 else "starts paying off"
                break
        if found is None and curve[0][1] == 1.0 and len(curve) > 1 and curve[1][1] != 1.0:
            found = curve[0][0]
            direction = "stops paying off" if curve[1][1] < 1 else "starts paying off"
        out.append(Breakeven(label, path, found, direction, lo, hi, curve, study.simulations))
    return out


def to_json_lines(results: list[Breakeven]) -> str:
    """One JSON object per compressor and line: ``compressor``, ``path``, ``breakeven``
    (null when none in range), ``direction``, ``lo``, ``hi``, ``curve``."""
    return "\n".join(json.dumps(r.to_dict(), allow_nan=False) for r in results)


__all__ = ["Breakeven", "find_breakeven", "to_json_lines"]
