"""Running a study's points: here (serial), in local processes (``jobs``), or on an
existing Dask distributed cluster (``dask``: the scheduler's address).

The simulator is torch-free: a worker needs the package and the profile, which is sent as
data (once per profile and chunk of points; scattered once to every Dask worker). Points
go out in chunks of the same profile; every finished point is handed to ``on_done`` in
this process as soon as its chunk returns (that is where it is stored), so an interrupted
study keeps everything finished so far.

>>> execute_points(tasks, profiles, jobs=2, on_done=store_it)   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import gc
import math
import signal
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..errors import ConfigError

#: seconds a Dask scheduler has to answer before `--dask` gives up (nothing is lost)
DASK_TIMEOUT_S = 5.0


@dataclass
class PointTask:
    """One point to compute: its place in the study, key, axis values, its sweep
    variant's scenario and grid point, and the identity of its profile."""

    index: int
    key: str
    point: dict[str, Any]
    variant: Any = field(repr=False)  # Scenario of the sweep variant (its whole grid)
    grid_point: Any = field(repr=False)  # GridPoint of that grid
    profile_id: str = ""

    @functools.cached_property
    def scenario(self) -> Any:
        """The one-point scenario (:func:`~rsdgc_sim.study.points.one_point`), made when
        first asked: only the points simulated need one."""
        from .points import one_point

        return one_point(self.variant, self.grid_point)


OnDone = Callable[[PointTask, list[dict[str, Any]], list[Any]], None]


def compute_points(scenarios: list[Any], profile: Any, trace: bool = False) -> list[tuple]:
    """(rows, sims) of each one-point scenario: what a worker runs (torch-free)."""
    from .simulate import simulate_scenario  # lazy: imports pydantic, numpy, networkx, simpy, yaml

    return [simulate_scenario(sc, profile, trace=trace) for sc in scenarios]


def _rows_only(scenarios: list[Any], profile: Any) -> list[list[dict[str, Any]]]:
    """compute_points without the simulator's results (what comes back from a worker)."""
    return [rows for rows, _sims in compute_points(scenarios, profile)]


def chunks(tasks: list[PointTask], workers: int, most: int = 32) -> list[list[PointTask]]:
    """Tasks cut into chunks of one profile each, about four per worker (at most ``most``
    points, so that finished points come back and are stored often)."""
    size = max(1, min(most, math.ceil(len(tasks) / (4 * max(1, workers)))))
    by_profile: dict[str, list[PointTask]] = {}
    for t in tasks:
        by_profile.setdefault(t.profile_id, []).append(t)
    return [group[i:i + size] for group in by_profile.values()
            for i in range(0, len(group), size)]


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops handing out points."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: the most local processes ``jobs`` may ask for (each is a Python interpreter with the
#: simulator, ~100 MB; more than the machine's cores only time-share them)
MAX_JOBS = 256


def execute_points(
    tasks: list[PointTask],
    profiles: dict[str, Any],
    on_done: OnDone,
    jobs: int = 1,
    dask: str | None = None,
    trace: bool = False,
    dask_timeout_s: float = DASK_TIMEOUT_S,
) -> None:
    """Compute every task and call ``on_done(task, rows, sims)`` for each as it finishes
    (``sims`` only serially with ``trace``; empty otherwise). ``profiles``: profile identity
    -> Profile."""
    if not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"jobs: must be 1 to {MAX_JOBS} local processes (got {jobs})")
    if not tasks:  # nothing to send: no scheduler needed
        return
    if dask is not None:
        _run_dask(tasks, profiles, on_done, dask, dask_timeout_s)
    elif jobs > 1 and len(tasks) > 1:
        _run_pool(tasks, profiles, on_done, jobs)
    else:
        for t in tasks:
            ((rows, sims),) = compute_points([t.scenario], profiles[t.profile_id], trace=trace)
            on_done(t, rows, sims if trace else [])


def _run_pool(tasks: list[PointTask], profiles: dict[str, Any], on_done: OnDone, jobs: int) -> None:
    # lazy: multiprocessing and concurrent.futures (~25 ms), for --jobs only
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: the parent may hold torch's threads (it measured a profile); forking them is unsafe
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint)
    try:
        pending = {pool.submit(_rows_only, [t.scenario for t in c], profiles[c[0].profile_id]): c
                   for c in chunks(tasks, jobs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                chunk = pending.pop(fut)
                for t, rows in zip(chunk, fut.result(), strict=True):
                    on_done(t, rows, [])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _tcp_host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a plain TCP scheduler address (``tcp://h:p`` or ``h:p``); None
    for another scheme (tls://, inproc://, ...), which is left to Dask."""
    rest = address.removeprefix("tcp://")
    if "://" in rest or ":" not in rest:
        return None
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    try:
        return host, int(port)
    except ValueError:
        return None


#: the most frames a Dask handshake message plausibly has (its first 8 bytes are the
#: frame count); anything larger is another protocol
_MAX_HANDSHAKE_FRAMES = 1024


def probe_dask(address: str, timeout_s: float = DASK_TIMEOUT_S) -> None:
    """Check that a Dask scheduler speaks at a TCP ``address`` before Dask connects: a
    scheduler writes its handshake first, a message whose first 8 bytes are its frame
    count. Nothing listening, a listener that never writes (an HTTP server, a stalled
    process) or bytes of another protocol (a proxy, HTTP) are one ConfigError within about
    ``timeout_s``; Dask's own client would wait for minutes or try to allocate exabytes."""
    import socket  # lazy: for --dask only

    hp = _tcp_host_port(address)
    if hp is None:
        return
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection(hp, timeout=timeout_s) as sock:
            head = b""
            while len(head) < 8:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    raise ConfigError(f"--dask {address}: the connection was closed without a "
                                      f"word: not a Dask scheduler")
                head += chunk
    except TimeoutError:
        raise ConfigError(f"--dask {address}: no Dask scheduler answered within {timeout_s:g} s "
                          f"(something accepts connections there but says nothing: an HTTP "
                          f"server such as the dashboard, usually port 8787, or a stalled "
                          f"process; the scheduler listens on 8786 by default)") from None
    except OSError as e:
        raise ConfigError(f"--dask {address}: no Dask scheduler answered within {timeout_s:g} s "
                          f"({e.strerror or e})") from None
    frames = struct.unpack("<Q", head)[0]
    if head.startswith(b"HTTP") or not 0 < frames <= _MAX_HANDSHAKE_FRAMES:
        raise ConfigError(f"--dask {address}: something answers there, but not in Dask's "
                          f"protocol (it began {head!r}): is this the scheduler's address?")


def connect_dask(address: str, timeout_s: float = DASK_TIMEOUT_S):
    """A ``distributed.Client`` of the scheduler at ``address``, or a ConfigError within
    about ``timeout_s`` when no scheduler answers there (:func:`probe_dask` first)."""
    try:
        from distributed import Client  # lazy: distributed (an optional extra)
    except ImportError:
        raise ConfigError("--dask needs Dask distributed: pip install -e '.[dask]'") from None
    probe_dask(address, timeout_s)
    try:
        return Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except Exception as e:  # whatever Dask raises: one line
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        error = ConfigError(f"--dask {address}: no Dask scheduler answered within "
                            f"{timeout_s:g} s ({why})")
    _collect_failed_client()
    raise error


def _collect_failed_client() -> None:
    """Collect the half-made Client of a failed connection now, with its ``__del__``'s
    complaint (``Exception ignored in Client.__del__``, seconds later) kept quiet."""
    hook = sys.unraisablehook

    def quiet(u) -> None:
        if "Client.__del__" not in repr(getattr(u, "object", "")):
            hook(u)

    sys.unraisablehook = quiet
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _run_dask(tasks: list[PointTask], profiles: dict[str, Any], on_done: OnDone, address: str,
              timeout_s: float) -> None:
    from distributed import as_completed  # lazy: distributed (an optional extra)

    client = connect_dask(address, timeout_s)
    futures = []
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        needed = {t.profile_id for t in tasks}
        scattered = {pid: client.scatter(profiles[pid], broadcast=True) for pid in needed}
        owner = {}
        for c in chunks(tasks, workers):
            fut = client.submit(_rows_only, [t.scenario for t in c], scattered[c[0].profile_id],
                                pure=False)
            owner[fut.key] = c
            futures.append(fut)
        for fut in as_completed(futures, loop=client.loop):
            chunk = owner[fut.key]
            try:
                result = fut.result()
            except Exception as e:  # a worker without the package, or of another version
                raise ConfigError(
                    f"--dask {address}: a worker failed ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:160] if str(e) else ''}); workers need "
                    f"rsdgc-sim {__version__} installed") from e
            for t, rows in zip(chunk, result, strict=True):
                on_done(t, rows, [])
    finally:
        if futures:
            client.cancel(futures)
        client.close()
