"""Start N rank processes (each inside its host's network namespace, or on loopback), watch
them, and collect each rank's JSON result.

Faults are handled here: a rank that exits with an error stops the others at once and the
error names the rank, its exit code and the end of its stderr; ranks still running after
``timeout_s`` are stopped and reported as hung; Ctrl-C (or SIGTERM) stops every rank
before it propagates. Every rank runs in its own session, so stopping it stops its children.

A rank whose work is done but whose process does not end is stopped, and its result kept:
once every rank has written its result, the ranks still running get :data:`EXIT_GRACE_S`
to exit. Seen under load: the main thread, holding the GIL, destroys gloo's process group at
exit, whose destructor joins gloo's run-loop thread, which waits for the GIL to run a
Python callback (gdb: ``~ProcessGroupGloo`` in ``std::thread::join``, ``pt_gloo_runloop``
in ``take_gil``), 5 launches in 25 with two launches at a time on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EmulationError
from .forked import ForkedRank, start_rank
from .netns import Network

#: environment variable that tells a rank where to write its JSON result
RESULT_ENV = "RSDGC_RESULT"


@dataclass
class RankProcess:
    rank: int
    proc: subprocess.Popen | ForkedRank
    result: Path
    stdout: Path
    stderr: Path


#: seconds a rank that has written its result (as every other rank has) gets to exit
#: before it is stopped, its result kept
EXIT_GRACE_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _stop(procs: Sequence[RankProcess], grace_s: float = 3.0) -> None:
    """SIGTERM every still-running rank's process group, then SIGKILL after ``grace_s``."""
    alive = [p for p in procs if p.proc.poll() is None]
    for p in alive:
        try:
            os.killpg(p.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for p in alive:
        try:
            p.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.proc.wait()


class _SigtermAsInterrupt:
    """Inside the block, SIGTERM raises KeyboardInterrupt (so ``finally`` cleanup runs)."""

    def __enter__(self):
        self._old = None
        try:
            self._old = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def launch(
    argv: Sequence[str],
    world_size: int,
    *,
    network: Network | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    workdir: str | Path | None = None,
    exit_grace_s: float = EXIT_GRACE_S,
) -> list[dict[str, Any]]:
    """Run ``argv`` (e.g. ``[sys.executable, "-m", "rsdgc_sim.emulate.worker", spec]``) as
    ``world_size`` ranks with the torch.distributed environment set (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, ``GLOO_SOCKET_IFNAME``)
    and :data:`RESULT_ENV` naming a file each rank must write its JSON result to. Returns the
    ranks' results in rank order; raises :class:`EmulationError` when a rank fails, hangs or
    writes no result."""
    if network is not None and len(network.hosts) != world_size:
        raise EmulationError(
            f"network has {len(network.hosts)} hosts but {world_size} ranks were asked for"
        )
    tmp = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="rsdgc-ranks-"))
    tmp.mkdir(parents=True, exist_ok=True)
    if network is not None:
        master, port = network.hosts[0].addr, 29500
    else:
        master, port = "127.0.0.1", free_port()
    procs: list[RankProcess] = []
    with _SigtermAsInterrupt():
        try:
            for rank in range(world_size):
                e = dict(os.environ)
                e.update(env or {})
                e.update(
                    RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0",
                    LOCAL_WORLD_SIZE="1", MASTER_ADDR=master, MASTER_PORT=str(port),
                    GLOO_SOCKET_IFNAME=network.hosts[rank].ifname if network else "lo",
                    PYTHONUNBUFFERED="1",
                )  # fmt: skip
                result = tmp / f"rank{rank}.json"
                result.unlink(missing_ok=True)
                e[RESULT_ENV] = str(result)
                out, err = tmp / f"rank{rank}.out", tmp / f"rank{rank}.err"
                netns = network.hosts[rank].netns if network is not None else None
                proc = start_rank(argv, e, netns, out, err)  # forked with torch imported
                if proc is None:
                    prefix = network.exec_prefix(rank) if network is not None else []
                    with open(out, "wb") as fo, open(err, "wb") as fe:
                        proc = subprocess.Popen(
                            [*prefix, *argv], env=e, stdout=fo, stderr=fe,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                        )  # fmt: skip
                procs.append(RankProcess(rank, proc, result, out, err))
            _watch(procs, timeout_s, exit_grace_s)
        except BaseException:
            _stop(procs)
            raise
    results = []
    for p in procs:
        try:
            results.append(json.loads(p.result.read_text()))
        except (OSError, ValueError) as e:
            raise EmulationError(
                f"rank {p.rank} exited cleanly but wrote no readable result ({e}); "
                f"stderr:\n{_tail(p.stderr)}"
            ) from None
    return results


def _watch(procs: Sequence[RankProcess], timeout_s: float,
           exit_grace_s: float = EXIT_GRACE_S) -> None:
    deadline = time.monotonic() + timeout_s
    done_at: float | None = None  # when every rank had written its result
    while True:
        codes = [p.proc.poll() for p in procs]
        failed = [p for p, c in zip(procs, codes, strict=True) if c not in (None, 0)]
        if failed:
            # the first rank to fail is the cause; the others usually fail because of it
            first = failed[0]
            _stop(procs)
            raise EmulationError(
                f"rank {first.rank} failed with exit code {first.proc.returncode}; "
                f"the other ranks were stopped. Its stderr ends with:\n{_tail(first.stderr)}"
            )
        if all(c == 0 for c in codes):
            return
        if done_at is None and all(p.result.exists() for p in procs):
            done_at = time.monotonic()
        if done_at is not None and time.monotonic() > done_at + exit_grace_s:
            stuck = [p.rank for p, c in zip(procs, codes, strict=True) if c is None]
            _stop(procs)  # done, but stuck on the way out: the results stand
            warnings.warn(f"rank(s) {stuck} wrote their results but had not exited "
                          f"{exit_grace_s:g} s later; stopped them (their results stand)",
                          RuntimeWarning, stacklevel=3)
            return
        if time.monotonic() > deadline:
            hung = [p.rank for p, c in zip(procs, codes, strict=True) if c is None]
            _stop(procs)
            raise EmulationError(
                f"rank(s) {hung} still running after the {timeout_s:g} s timeout (hung?); "
                f"stopped them. Last stderr of rank {hung[0]}:\n"
                f"{_tail(procs[hung[0]].stderr)}"
            )
        time.sleep(0.05)


def write_result(data: Mapping[str, Any]) -> None:
    """In a rank: write its result where the launcher expects it (atomically)."""
    path = os.environ.get(RESULT_ENV)
    if not path:
        raise EmulationError(f"{RESULT_ENV} is not set: not started by the launcher")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def python_argv(module: str, *args: str) -> list[str]:
    """``[python, -m, module, *args]`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
