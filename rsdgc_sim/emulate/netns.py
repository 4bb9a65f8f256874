"""Emulated networks: one Linux network namespace per host, joined through a bridge (the
``switch`` topology), each host's egress shaped with ``tc`` (tbf), as Mininet does.

Every object a run creates carries the run's unique id in its name, and its owner's pid in a
place ``ip`` shows (the namespace name, the bridge's alias), so that

* two runs never collide (``rsdgc-<run>-h<rank>`` namespaces, ``rs<run>b`` bridges,
  ``rs<run>v<rank>`` veths; interface names stay within Linux's 15 characters);
* :meth:`Network.close` removes everything the run made (namespaces, veths, bridge; the
  qdiscs go with their devices) and is safe to call twice, from ``finally`` blocks, on
  Ctrl-C and after a rank crashed;
* :func:`remove_stale` removes what a killed run (whose pid no longer exists) left behind.

Latency: ``tc netem`` is a kernel module that some kernels lack; :func:`capabilities`
detects it once. Without it the links carry only the latency of the veth path itself, which
calibration measures (``rsdgc_sim.calibration``) and the prediction uses.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import EmulationError

#: every namespace and link of ours starts with these
NETNS_PREFIX = "rsdgc-"
LINK_PREFIX = "rs"
ALIAS_PREFIX = "rsdgc-sim pid="
SUBNET = "10.213.0"  # /24 inside each run's own namespaces: runs never share it


def _ip(*args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EmulationError(f"`ip {' '.join(args)}` failed: {e}") from None
    if check and r.returncode != 0:
        raise EmulationError(f"`ip {' '.join(args)}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return r


_NETNS_EXEC = ["ip", "netns", "exec"]


def _tc_in(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _ip("netns", "exec", netns, "tc", *args, check=check)


def _tc_root(*args: str) -> None:
    """``tc`` in the root namespace (the switch side of a veth); failure is an EmulationError."""
    r = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise EmulationError(f"tc {' '.join(args)} failed: {r.stderr.strip()}")


@dataclass(frozen=True)
class Capabilities:
    """What this machine lets us emulate."""

    netns: bool
    tbf: bool
    netem: bool
    reason: str = ""  # why netns is not available (empty when it is)


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """Probe once: root, the ``ip`` and ``tc`` tools, namespaces, tbf and netem (on a dummy
    device inside a throw-away namespace, removed again)."""
    if os.geteuid() != 0:
        return Capabilities(False, False, False, "not running as root")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return Capabilities(False, False, False, f"`{tool}` not found")
    ns = f"{NETNS_PREFIX}probe-{os.getpid()}-{secrets.token_hex(2)}"
    r = _ip("netns", "add", ns, check=False)
    if r.returncode != 0:
        return Capabilities(False, False, False, f"`ip netns add` failed: {r.stderr.strip()}")
    try:
        ok = _ip(
            "-n", ns, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1", check=False
        ).returncode == 0  # fmt: skip
        tbf = ok and _tc_in(
            ns, "qdisc", "add", "dev", "probe0", "root", "tbf", "rate", "100mbit",
            "burst", "32kb", "latency", "50ms", check=False,
        ).returncode == 0  # fmt: skip
        if tbf:
            _tc_in(ns, "qdisc", "del", "dev", "probe0", "root", check=False)
        netem = ok and _tc_in(
            ns, "qdisc", "add", "dev", "probe0", "root", "netem", "delay", "1ms", check=False
        ).returncode == 0  # fmt: skip
        return Capabilities(True, tbf, netem, "" if tbf else "`tc qdisc ... tbf` not available")
    finally:
        _ip("netns", "del", ns, check=False)


def new_run_id() -> str:
    """Six random hex digits: unique enough that concurrent runs never pick the same."""
    return secrets.token_hex(3)


#: the smallest tbf burst (bytes): a whole GSO packet, 64 KiB of TCP payload and the headers
#: of its 45 segments (about 68.5 KB with IPv4, 69.4 KB with IPv6), with room to spare. tbf
#: splits a packet larger than its burst into MTU-sized packets, each sent on a timer of its
#: own: at 100 Mbit/s with a 32 KiB burst that costs 3-5 % of each core in softirqs, charged
#: to whichever thread runs (backward, the hook, gloo's callbacks), about 50 times the NET_TX
#: softirqs of a burst that holds the packet (measured with /proc/softirqs; a NIC segments
#: in hardware, so a real link has no such cost)
MIN_BURST_BYTES = 80 * 1024


def tbf_args(rate_bytes_per_s: float) -> list[str]:
    """``tc`` arguments of a tbf qdisc at ``rate_bytes_per_s``: a bucket of 2 ms of traffic
    (at least :data:`MIN_BURST_BYTES`, so that a 64 KiB GSO packet passes whole rather than
    being split into MTU-sized packets) and a queue of 100 ms (at least 1 MiB), deep enough
    that one TCP flow is not dropped."""
    if rate_bytes_per_s <= 0:
        raise EmulationError(f"link rate must be positive, got {rate_bytes_per_s} bytes/s")
    bits = max(int(rate_bytes_per_s * 8), 8000)
    burst = max(int(rate_bytes_per_s * 0.002), MIN_BURST_BYTES)
    limit = max(int(rate_bytes_per_s * 0.1), 1 << 20)
    return ["tbf", "rate", f"{bits}bit", "burst", str(burst), "limit", str(limit)]


def netem_args(delay_s: float, shaped: bool) -> list[str]:
    """``tc qdisc add`` arguments after ``dev DEV`` for a netem delay of ``delay_s``: the
    child of the device's tbf (``parent 1:1``) when the device is shaped, else the root."""
    if delay_s <= 0:
        raise EmulationError(f"netem delay must be positive, got {delay_s} s")
    where = ["parent", "1:1", "handle", "10:"] if shaped else ["root"]
    return [*where, "netem", "delay", f"{delay_s * 1e6:.0f}us"]


def delay_commands(netns: str, inner: str, outer: str, delay_s: float, *,
                   host_shaped: bool, port_shaped: bool) -> list[list[str]]:
    """The ``tc`` command lines that give one host's link its share of a host-to-host
    latency ``delay_s``: the simulator's switch gives each of the two links of a
    host-switch-host path half of it, so the host's egress (``inner``, inside ``netns``) and
    the switch port's egress towards the host (``outer``) each delay by ``delay_s / 2``; a
    packet from host a to host b crosses a's egress and b's switch port: ``delay_s`` in all.
    Nothing when ``delay_s`` is 0."""
    if delay_s <= 0:
        return []
    half = delay_s / 2
    return [
        [*_NETNS_EXEC, netns, "tc", "qdisc", "add", "dev", inner, *netem_args(half, host_shaped)],
        ["tc", "qdisc", "add", "dev", outer, *netem_args(half, port_shaped)],
    ]


@dataclass
class Host:
    rank: int
    netns: str
    ifname: str  # the veth end inside the namespace
    addr: str


@dataclass
class Network:
    """A switch (bridge) with ``workers`` hosts, each in its own namespace.

    ``rate_bytes_per_s`` shapes each host's egress (tbf on the host's veth end) and, with
    ``shape_ingress``, each switch port's egress towards the host too (full-duplex links of
    that rate); ``None`` leaves the links unshaped. ``delay_s`` needs netem.
    """

    workers: int
    rate_bytes_per_s: float | None = None
    delay_s: float = 0.0
    shape_ingress: bool = True
    run_id: str = field(default_factory=new_run_id)
    hosts: list[Host] = field(default_factory=list)
    _made: list[tuple[str, str]] = field(default_factory=list)  # (kind, name), in order
    closed: bool = False

    @property
    def bridge(self) -> str:
        return f"{LINK_PREFIX}{self.run_id}b"

    def netns_name(self, rank: int) -> str:
        return f"{NETNS_PREFIX}{self.run_id}-{os.getpid()}-h{rank}"

    def _veth(self, rank: int) -> tuple[str, str]:
        # names <= 15 characters: "rs" + 6 + "v"/"p" + up to 4 digits
        return f"{LINK_PREFIX}{self.run_id}v{rank}", f"{LINK_PREFIX}{self.run_id}p{rank}"

    def open(self) -> Network:
        """Create bridge, namespaces, veths, addresses and qdiscs. On any failure everything
        made so far is removed before the error propagates."""
        if not 1 <= self.workers <= 250:
            raise EmulationError(f"an emulated switch holds 1..250 hosts, got {self.workers}")
        if self.delay_s > 0 and not capabilities().netem:
            raise EmulationError("link delay needs `tc netem`, which this kernel lacks")
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        br = self.bridge
        _ip("link", "add", br, "type", "bridge")
        self._made.append(("link", br))
        _ip("link", "set", "dev", br, "alias", f"{ALIAS_PREFIX}{os.getpid()}")
        _ip("link", "set", br, "up")
        for rank in range(self.workers):
            ns = self.netns_name(rank)
            outer, inner = self._veth(rank)
            _ip("netns", "add", ns)
            self._made.append(("netns", ns))
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            self._made.append(("link", outer))
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "master", br)
            _ip("link", "set", outer, "up")
            addr = f"{SUBNET}.{rank + 1}"
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", inner, "up")
            if self.rate_bytes_per_s is not None:
                _tc_in(ns, "qdisc", "add", "dev", inner, "root", "handle", "1:",
                       *tbf_args(self.rate_bytes_per_s))  # fmt: skip
                if self.shape_ingress:
                    _tc_root("qdisc", "add", "dev", outer, "root", "handle", "1:",
                             *tbf_args(self.rate_bytes_per_s))  # fmt: skip
            for cmd in delay_commands(
                ns, inner, outer, self.delay_s,
                host_shaped=self.rate_bytes_per_s is not None,
                port_shaped=self.rate_bytes_per_s is not None and self.shape_ingress,
            ):  # fmt: skip
                r = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if r.returncode != 0:
                    raise EmulationError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
            self.hosts.append(Host(rank, ns, inner, addr))

    def exec_prefix(self, rank: int) -> list[str]:
        """Command prefix that runs a program inside host ``rank``'s namespace."""
        return ["ip", "netns", "exec", self.hosts[rank].netns]

    def close(self) -> None:
        """Remove everything this run made, in reverse order; errors are collected and raised
        together at the end, after every removal was tried. Safe to call more than once."""
        errors = []
        for kind, name in reversed(self._made):
            if kind == "netns":
                r = _ip("netns", "del", name, check=False)
                if r.returncode != 0 and name in list_netns():
                    errors.append(f"netns {name}: {r.stderr.strip()}")
            else:
                r = _ip("link", "del", name, check=False)
                if r.returncode != 0 and name in list_links():
                    errors.append(f"link {name}: {r.stderr.strip()}")
        self._made.clear()
        self.hosts.clear()
        self.closed = True
        if errors:
            raise EmulationError("cleanup left behind: " + "; ".join(errors))

    def __enter__(self) -> Network:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def leftovers(self) -> list[str]:
        """Names of this run's namespaces and links that still exist (empty after close;
        veth removal by the kernel is asynchronous, this waits up to 2 s for it)."""
        return wait_gone(self.run_id)


def list_netns() -> list[str]:
    r = _ip("netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def list_links() -> list[str]:
    r = _ip("-o", "link", "show", check=False)
    names = []
    for line in r.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def owned_by_run(run_id: str) -> list[str]:
    """Namespaces and links whose names carry ``run_id``."""
    ns = [n for n in list_netns() if n.startswith(f"{NETNS_PREFIX}{run_id}-")]
    links = [n for n in list_links() if re.fullmatch(rf"{LINK_PREFIX}{run_id}[bvp]\d*", n)]
    return ns + links


def wait_gone(run_id: str, timeout_s: float = 2.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    left = owned_by_run(run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = owned_by_run(run_id)
    return left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Remove namespaces and bridges left by runs whose process no longer exists (a run
    killed with SIGKILL cannot clean up after itself). Returns what was removed."""
    removed = []
    for ns in list_netns():
        m = re.fullmatch(rf"{NETNS_PREFIX}[0-9a-f]{{6}}-(\d+)-h\d+", ns)
        if m and not _alive(int(m[1])):
            if _ip("netns", "del", ns, check=False).returncode == 0:
                removed.append(ns)
    r = _ip("-o", "link", "show", "type", "bridge", check=False)
    for line in r.stdout.splitlines():
        m = re.search(rf"^\d+:\s*({LINK_PREFIX}[0-9a-f]{{6}}b)[:@]", line)
        if not m:
            continue
        alias = _ip("-o", "link", "show", "dev", m[1], check=False).stdout
        a = re.search(rf"alias {re.escape(ALIAS_PREFIX)}(\d+)", alias)
        if a and not _alive(int(a[1])):
            if _ip("link", "del", m[1], check=False).returncode == 0:
                removed.append(m[1])
    return removed
