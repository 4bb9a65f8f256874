"""The Python API of a study: scenario -> profiles (measured, cached, estimated or from a
file) -> every compressor x point simulated (here, in processes or on Dask; finished
points stored and reused) -> a :class:`~rsdgc_sim.report.results.StudyResult`.

>>> from rsdgc_sim.scenario import load_scenario
>>> from rsdgc_sim.study.orchestrate import run_scenario
>>> result = run_scenario(load_scenario())            # doctest: +SKIP
>>> result.runs[0]["iteration_s"]                     # doctest: +SKIP

Nothing here writes files except the profile cache and the point store; writing results
is :func:`rsdgc_sim.report.write_results`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..profile.schema import Profile
from ..profile.store import ProfileStore
from ..progress import Eta, Transient, format_span
from ..report.results import StudyResult
from ..scenario import Scenario
from ..scenario.sweep import GRID_AXES, expand_sweep
from .execute import PointTask, execute_points
from .points import PointStore, StoredIndex, point_keys, profile_identity
from .profiles import profile_scenario

Progress = Callable[[str], None]

#: a study traces its iterations (trace.json) only up to this many points
TRACE_POINTS = 64
#: a sweep of this many variants says how far their validation got (~0.1 ms each)
BUILD_NOTE_VARIANTS = 20_000
#: a sweep needing more profiles than this says their count and time left, and shows each
#: profile's own messages on the status line only
QUIET_PROFILES = 5


def run_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    refresh: bool = False,
    trace: bool = False,
    progress: Progress | None = None,
    profile_file: str | None = None,
    points_dir: str | None = None,
    jobs: int = 1,
    dask: str | None = None,
    fresh: bool = False,
    pin: bool = False,
) -> StudyResult:
    """Profile every variant of the sweep (profiles shared through the cache), then
    simulate every compressor x point: serially, in ``jobs`` local processes, or on the
    Dask scheduler at ``dask``. ``trace``: keep the simulator's results with their spans
    (``StudyResult.sims``, for trace.json) when every point is simulated here, serially,
    and there are at most ``TRACE_POINTS``.

    ``points_dir`` (``OUT/points``): the point store; every finished point is stored there
    as it completes and found there by the next run (an interrupted study resumes, an
    unchanged one computes nothing); ``fresh`` simulates every point again and overwrites
    them. Without it, every point is computed. Rows come in
    sweep order (the first path slowest), then workers, bandwidth, latency, then compressor.
    ``refresh``, ``pin``, ``profile_file``: as for :func:`profile_scenario`.
    """
    say = progress or (lambda _m: None)
    variants = _built(expand_sweep(scenario), say)
    profiles, variant_profile, measured, reused = _variant_profiles(
        variants, store=store, refresh=refresh, progress=progress, profile_file=profile_file,
        pin=pin)
    if len(variants) > 1:
        say(f"profiles: {measured} measured, {reused} reused (cache or file), "
            f"for {len(variants)} sweep variants")
    tasks = _point_tasks(variants, variant_profile)
    axes = _axes(scenario, tasks)

    point_store = PointStore(points_dir) if points_dir is not None else None
    index = point_store.index() if point_store is not None else StoredIndex()
    found = _stored_rows(point_store, tasks, index) if not fresh else {}
    pending = [t for t in tasks if t.index not in found]
    if trace and len(pending) > TRACE_POINTS:  # trace.json would be huge (said by the caller,
        trace = False                           # which sees no ``sims`` and why: once)
    where = (f"on the Dask cluster at {dask}" if dask else
             f"in {jobs} processes" if jobs > 1 and len(pending) > 1 else "here")
    say(f"points: {len(tasks)}, {len(found)} reused from {points_dir}, {len(pending)} to "
        f"simulate {where}" if point_store is not None else
        f"points: {len(tasks)} to simulate {where}")

    done = _DonePoints(point_store, len(pending), say)
    try:
        _execute_with_estimate(pending, profiles, done, jobs=jobs, dask=dask, trace=trace,
                               say=say)
    except KeyboardInterrupt:
        raise StudyInterrupted(len(done.rows), len(pending), points_dir) from None

    _update_index(point_store, tasks, {**found, **done.rows}, index)
    runs: list[dict[str, Any]] = []
    sims: list[Any] = []
    for t in tasks:
        rows = found.get(t.index) or done.rows[t.index]
        runs += [{**r, "point": dict(t.point)} for r in rows]
        sims += done.sims.get(t.index, [])
    first = profiles[variant_profile[0]]
    return StudyResult(
        scenario=scenario, profile=first, runs=runs,
        sims=sims if len(sims) == len(runs) else [],
        profile_cached=measured == 0, axes=axes, points_computed=len(done.rows),
        points_reused=len(found), profiles_measured=measured, profiles_reused=reused)


def _built(variants: Sequence[Any], say: Progress) -> list[Any]:
    """Every variant validated, once (a large sweep says how far it got)."""
    if len(variants) < BUILD_NOTE_VARIANTS:
        return list(variants)
    out, eta = [], Eta(len(variants), every_s=2.0)
    for i, v in enumerate(variants):
        out.append(v)
        if eta.due():
            say(Transient(f"sweep: {len(variants):,} variants, validated {eta.update(i + 1)}"))
    return out


def _variant_profiles(variants: list[Any], progress: Progress | None = None,
                      **profile_args: Any) -> tuple[dict[str, Profile], list[str], int, int]:
    """One profile per distinct set of what profiles depend on (the cache shares it
    further): the profiles by identity, each variant's profile identity, and how many were
    measured and reused (from the cache or a file). ``profile_args``: for
    :func:`profile_scenario`. With more than :data:`QUIET_PROFILES` profiles, their own
    messages go to the status line and their count and time left are said instead (after
    the first, when the rest would take more than :data:`ESTIMATE_ABOVE_S`)."""
    say = progress or (lambda _m: None)
    inputs = [v.scenario.model_dump_json(
        include={"model", "batch_size", "device", "seed", "profile", "compressors"})
        for v in variants]
    distinct = list(dict.fromkeys(inputs))
    first_of = {key: i for i, key in reversed(list(enumerate(inputs)))}
    many = len(distinct) > QUIET_PROFILES
    if many:
        say(f"profiles: {len(distinct):,} distinct among the {len(variants):,} sweep variants")
    each = (lambda m: say(Transient(str(m)))) if many else progress
    profiles: dict[str, Profile] = {}
    by_inputs: dict[str, str] = {}
    measured = reused = 0
    eta = Eta(len(distinct), every_s=1.0)
    for n, key in enumerate(distinct):
        t0 = time.perf_counter()
        prof, cached = profile_scenario(variants[first_of[key]].scenario, progress=each,
                                        **profile_args)
        pid = profile_identity(prof)
        profiles.setdefault(pid, prof)
        by_inputs[key] = pid
        reused, measured = reused + cached, measured + (not cached)
        # the second profile's time (the first's includes importing torch) times the rest
        took = time.perf_counter() - t0
        if many and n == 1 and took * (len(distinct) - 2) > ESTIMATE_ABOVE_S:
            say(f"profiles: the second took {_took(took)}; the other {len(distinct) - 2:,} "
                f"will take about {format_span(took * (len(distinct) - 2))} (Ctrl-C keeps "
                f"the cached ones: the same command reuses them)")
        elif many and eta.due():
            say(Transient(f"profiles: {eta.update(n + 1)}"))
    return profiles, [by_inputs[key] for key in inputs], measured, reused


def _point_tasks(variants: list[Any], variant_profile: list[str]) -> list[PointTask]:
    """Every grid point of every sweep variant as a one-point scenario (a ``PointTask``
    keyed by what its rows depend on), in sweep order, then workers, bandwidth, latency."""
    tasks: list[PointTask] = []
    for v, pid in zip(variants, variant_profile, strict=True):
        for gp, key in zip(v.scenario.grid(), point_keys(v.scenario, pid), strict=True):
            point = {**v.values, **{path: getattr(gp, f) for path, f in GRID_AXES.items()}}
            tasks.append(PointTask(index=len(tasks), key=key, point=point, variant=v.scenario,
                                   grid_point=gp, profile_id=pid))
    return tasks


def _axes(scenario: Scenario, tasks: list[PointTask]) -> dict[str, list[Any]]:
    """The sweep's and the grid's axes that take more than one value, with their values in
    order of first appearance."""
    axes: dict[str, list[Any]] = {}
    for path in [*scenario.sweep, *GRID_AXES]:
        values: list[Any] = []
        for t in tasks:
            if t.point[path] not in values:
                values.append(t.point[path])
        if len(values) > 1:
            axes[path] = values
    return axes


def _stored_rows(point_store: PointStore | None, tasks: list[PointTask],
                 index: StoredIndex) -> dict[int, list[dict[str, Any]]]:
    """The rows of the tasks finished before, found in the point store, by task index (a
    point file that is not what this version writes, for its compressors, is not found:
    the point is simulated again)."""
    found: dict[int, list[dict[str, Any]]] = {}
    labels: dict[int, list[str]] = {}  # by variant (the same object for all its points)
    if point_store is not None:
        for t in tasks:
            if (want := labels.get(id(t.variant))) is None:
                want = labels[id(t.variant)] = [c.key for c in t.variant.compressors]
            if (rows := point_store.get(t.key, want, index)) is not None:
                found[t.index] = rows
    return found


def _update_index(point_store: PointStore | None, tasks: list[PointTask],
                  rows: dict[int, list[dict[str, Any]]], index: StoredIndex) -> None:
    """Index the run's points in the store, unless ``index`` (as read before the run) holds
    them already, verified (an unchanged rerun writes nothing; one that found them in an
    index without a digest, as earlier versions wrote, writes it once with one)."""
    if point_store is None:
        return
    if index.verified and all(index.get(t.key) == rows[t.index] for t in tasks):
        return
    point_store.put_index({t.key: rows[t.index] for t in tasks})


#: a study whose points would take longer than this (estimated from its first point) says
#: so, with the estimate, before it simulates the rest
ESTIMATE_ABOVE_S = 30.0


def _execute_with_estimate(pending: list[PointTask], profiles: dict[str, Profile],
                           done: _DonePoints, *, jobs: int, dask: str | None, trace: bool,
                           say: Progress) -> None:
    """Simulate the first pending point here, timed; when the rest would take more than
    :data:`ESTIMATE_ABOVE_S` at its pace (divided over ``jobs`` processes), say how long
    before simulating them. On Dask every point goes to the cluster (its progress bar
    gives the time left)."""
    if len(pending) < 2 or dask is not None:  # Dask: nothing runs before its scheduler answers
        execute_points(pending, profiles, done.on_done, jobs=jobs, dask=dask, trace=trace)
        return
    t0 = time.perf_counter()
    execute_points(pending[:1], profiles, done.on_done, jobs=1, dask=None, trace=trace)
    first_s = time.perf_counter() - t0
    rest = pending[1:]
    estimate = first_s * len(rest) / jobs
    if estimate > ESTIMATE_ABOVE_S:
        spread = f" over {jobs} processes" if jobs > 1 else ""
        say(f"points: the first took {_took(first_s)}; the other {len(rest):,} "
            f"will take about {format_span(estimate)}{spread} (Ctrl-C keeps the finished "
            f"ones: the same command resumes)")
    execute_points(rest, profiles, done.on_done, jobs=jobs, dask=dask, trace=trace)


def _took(seconds: float) -> str:
    """``350 ms``, ``12 s``, ``4 min``."""
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else format_span(seconds)


class _DonePoints:
    """The points simulated in this run, as they complete: each stored in the point store
    (when there is one), its rows and simulator results kept, the progress bar said."""

    def __init__(self, point_store: PointStore | None, total: int, say: Progress):
        self.point_store = point_store
        self.total = total
        self.say = say
        self.rows: dict[int, list[dict[str, Any]]] = {}
        self.sims: dict[int, list[Any]] = {}
        self.eta = Eta(total, every_s=0.25)

    def on_done(self, task: PointTask, rows: list[dict[str, Any]], sims: list[Any]) -> None:
        if self.point_store is not None:
            self.point_store.put(task.key, task.point, rows)
        self.rows[task.index] = rows
        self.sims[task.index] = sims
        n = len(self.rows)
        if self.eta.due() or n == self.total:
            self.say(Transient(_points_bar(n, self.total, self.eta)))


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: ``done`` of ``total`` points were finished (and stored in
    ``points_dir``, when there is one)."""

    def __init__(self, done: int, total: int, points_dir: str | None):
        self.done, self.total, self.points_dir = done, total, points_dir
        kept = (f"; they are kept in {points_dir}: the same command resumes" if points_dir
                else "")
        super().__init__(f"interrupted after {done}/{total} points{kept}")


def _points_bar(done: int, total: int, eta, width: int = 24) -> str:
    """``points ━━━━━━━━━━━━╺━━━━━━━━━━━ 500/1000, 310/s, ~2 s left``."""
    filled = int(width * done / total) if total else width
    bar = "━" * filled + ("╺" if filled < width else "") + "─" * max(0, width - filled - 1)
    elapsed = eta.elapsed_s()
    per_s = done / elapsed if elapsed > 0 else 0.0
    rate = f"{per_s:.0f}/s" if per_s >= 10 else f"{per_s:.2g}/s"
    return eta.update(done, rate).replace(f"{eta.count(done)}", f"points {bar} {eta.count(done)}", 1)
