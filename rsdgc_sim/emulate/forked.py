"""Rank processes forked from a server that has torch imported.

A rank started as ``python -m MODULE ARGS`` spends 3-4 s of CPU importing torch and the
``torch._dynamo`` that DDP's constructor imports (on the 2-core VM; more under load), every
time: a 2-rank emulation point pays it twice, a profile measured alone once more. Here
such a rank forks from a *server* (multiprocessing's ``forkserver``) that imported
:data:`PRELOAD` once, then becomes what the subprocess would have been: its own session
(so stopping its process group stops it), stdin from ``/dev/null``, stdout and stderr to
the launcher's files, exactly the environment the launcher built, the host's network
namespace entered with ``setns(2)`` (what ``ip netns exec`` does first), and ``MODULE`` run
as ``__main__`` with ``ARGS``. Nothing it measures changes: it runs the same code, with
its own threads and cores set by the worker as before; only the imports are already done.

:class:`ForkedRank` has the part of :class:`subprocess.Popen` the launcher uses
(``pid``, ``poll``, ``wait``, ``returncode``).

**Opt-in** (``RSDGC_SIM_FORK_RANKS=1``; the test suite sets it, where ranks start dozens of
times and only their results matter). By default ranks stay fresh subprocesses, for two
reasons: in an A/B of three profiles measured alone each way (ResNet-18 at 32 px, batch 16,
one thread, 2-core VM) the forked ranks' forward took 0.051 s against 0.043 s (backward
0.150 against 0.139, top-k 0.075 against 0.088: not conclusive, but a measurement tool
does not take the risk); and multiprocessing's server imports the parent's ``__main__``
in every child, so a user's script without an ``if __name__ == "__main__":`` guard would
run again in each rank.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

#: imported once by the server: torch, its DDP and the torch._dynamo DDP's constructor
#: imports, and the worker the ranks run
PRELOAD = ["torch", "torch.distributed", "torch.nn.parallel", "torch._dynamo",
           "rsdgc_sim.emulate.worker"]
#: environment variable: ``1`` forks ranks from the server (default: subprocesses)
ENV = "RSDGC_SIM_FORK_RANKS"
#: setns(2)'s flag for a network namespace
CLONE_NEWNET = 0x40000000
#: where ``ip netns add`` leaves a namespace
NETNS_DIR = Path("/run/netns")

_context: list = []


def enabled() -> bool:
    return os.environ.get(ENV, "0").strip().lower() in ("1", "true", "on")


def module_of(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(MODULE, ARGS)`` when ``argv`` is ``[this python, -m, MODULE, *ARGS]`` (what
    :func:`~rsdgc_sim.emulate.launcher.python_argv` makes), else None."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m":
        return argv[2], list(argv[3:])
    return None


def server():
    """The forkserver context (started on first use, once per process)."""
    if not _context:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context.append(ctx)
    return _context[0]


def enter_netns(name: str) -> None:
    """Move this process into the network namespace ``name`` (setns(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into network namespace {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(module: str, args: list[str], env: dict[str, str], netns: str | None,
           stdout: str, stderr: str) -> None:
    """In the forked process: become the subprocess the launcher would have started."""
    import runpy

    os.setsid()
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        f = os.open(path, flags, 0o644)
        os.dup2(f, fd)
        os.close(f)
    if netns is not None:
        enter_netns(netns)
    os.environ.clear()
    os.environ.update(env)
    # what a new interpreter would put in front of its path
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


class ForkedRank:
    """A rank forked from the server; the ``subprocess.Popen`` surface the launcher uses."""

    def __init__(self, module: str, args: list[str], env: Mapping[str, str],
                 netns: str | None, stdout: Path, stderr: Path):
        self._proc = server().Process(
            target=_child, args=(module, args, dict(env), netns, str(stdout), str(stderr)))
        self._proc.start()
        self.pid = self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    def poll(self) -> int | None:
        return self._proc.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired("forked rank", timeout or 0.0)
        return self._proc.exitcode


def start_rank(argv: Sequence[str], env: Mapping[str, str], netns: str | None,
               stdout: Path, stderr: Path) -> ForkedRank | None:
    """The rank ``argv`` forked from the server, or None when it is to be a subprocess (not
    ``python -m MODULE``, or forking not asked for)."""
    if not enabled() or (mod := module_of(argv)) is None:
        return None
    return ForkedRank(mod[0], mod[1], env, netns, stdout, stderr)


__all__ = ["ENV", "PRELOAD", "ForkedRank", "enabled", "enter_netns", "module_of", "server", "start_rank"]
