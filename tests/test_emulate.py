"""Emulation: calibration fit and file, the rank launcher's fault handling, network namespaces
with cleanup, and one small end-to-end emulation (2 ranks, cnn_small, 100 Mbit/s)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import three_tensor_profile

from rsdgc_sim.calibration import (
    Calibration,
    LinkFit,
    fit_link,
    load_calibration,
    save_calibration,
)
from rsdgc_sim.emulate.launcher import launch
from rsdgc_sim.errors import ConfigError, EmulationError, ScenarioFileError

ROOT = Path(__file__).resolve().parents[1]
HAVE_NETNS = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("tc") is not None
netns = pytest.mark.netns
needs_netns = pytest.mark.skipif(not HAVE_NETNS, reason="needs root, ip and tc")


def _ours() -> set[str]:
    """Namespaces and links of rsdgc-sim runs, except those of runs by other live processes
    (a benchmark or another test session may be emulating at the same time)."""
    import re

    from rsdgc_sim.emulate.netns import NETNS_PREFIX, _alive, list_links, list_netns

    ns = [n for n in list_netns() if n.startswith(NETNS_PREFIX)]
    foreign = set()
    for n in ns:
        m = re.fullmatch(rf"{NETNS_PREFIX}([0-9a-f]{{6}})-(\d+)-h\d+", n)
        if m and int(m[2]) != os.getpid() and _alive(int(m[2])):
            foreign.add(m[1])
    links = [n for n in list_links() if re.fullmatch(r"rs[0-9a-f]{6}[bvp]\d*", n)]
    return {n for n in ns + links if not any(run in n for run in foreign)}


@pytest.fixture
def no_leftovers():
    """Fails the test if it leaves any namespace or link of ours behind (kernel removal of
    veths is asynchronous: wait up to 3 s)."""
    before = _ours()
    yield
    deadline = time.monotonic() + 3
    left = _ours() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _ours() - before
    assert not left, f"left behind: {sorted(left)}"


# -- calibration (no torch) -------------------------------------------------------------


def test_fit_recovers_alpha_and_beta_exactly():
    """On exact Hockney data t = alpha + beta*n the fit returns alpha and beta (r2 = 1)."""
    alpha, beta = 1e-4, 8e-8
    sizes = [4, 64, 1024, 16384, 262144, 4194304]
    fit = fit_link(sizes, [alpha + beta * n for n in sizes], 12.5e6)
    assert fit.alpha_s == pytest.approx(alpha, rel=1e-6)
    assert fit.beta_s_per_byte == pytest.approx(beta, rel=1e-6)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.efficiency == pytest.approx(1 / beta / 12.5e6)


def test_fit_ignores_token_bucket_burst():
    """Messages within tbf's burst pass at line rate; alpha comes from the small messages
    and beta from the large ones, not from a compromise line through both."""
    alpha, beta, burst = 5e-5, 1e-7, 32768
    sizes = [4, 64, 1024, 16384, 65536, 262144, 1048576, 4194304]
    times = [alpha + beta * max(0, n - burst) for n in sizes]
    fit = fit_link(sizes, times)
    assert fit.alpha_s == pytest.approx(alpha, rel=0.05)
    assert fit.beta_s_per_byte == pytest.approx(beta, rel=0.02)


def test_fit_rejects_too_few_sizes():
    """Two unknowns need two different sizes."""
    with pytest.raises(ConfigError, match="two different message sizes"):
        fit_link([1024, 1024], [1e-3, 1e-3])


def _cal(netem: bool = False) -> Calibration:
    return Calibration(
        source="emulated", netem=netem,
        links=[
            LinkFit(nominal_bandwidth_bytes_per_s=1e6, alpha_s=1e-4, beta_s_per_byte=1 / 0.9e6),
            LinkFit(nominal_bandwidth_bytes_per_s=1e8, alpha_s=3e-4, beta_s_per_byte=1 / 0.95e8),
        ],
    )  # fmt: skip


def test_link_uses_fitted_values_at_calibrated_rates():
    """At a calibrated rate: bandwidth x fitted efficiency, fitted alpha + scenario latency."""
    bw, lat = _cal().link(1e6, 5e-6)
    assert bw == pytest.approx(0.9e6)
    assert lat == pytest.approx(1e-4 + 5e-6)


def test_link_interpolates_in_log_rate_and_clamps():
    """Between calibrated rates the efficiency and alpha are interpolated in log(rate)
    (1e7 is half-way between 1e6 and 1e8); outside, the nearest calibrated rate holds."""
    bw, lat = _cal().link(1e7, 0.0)
    assert bw == pytest.approx(1e7 * 0.925)
    assert lat == pytest.approx(2e-4)
    bw, lat = _cal().link(1e10, 0.0)
    assert bw == pytest.approx(1e10 * 0.95)
    assert lat == pytest.approx(3e-4)


def test_link_with_netem_does_not_add_latency_twice():
    """When netem emulated the latency, it is already in alpha."""
    _, lat = _cal(netem=True).link(1e6, 5e-3)
    assert lat == pytest.approx(1e-4)


def test_cluster_calibration_replaces_scenario_values():
    """A calibration measured on a real cluster (no nominal rate) is the network."""
    cal = Calibration(source="cluster", links=[LinkFit(alpha_s=2e-5, beta_s_per_byte=1e-9)])
    assert cal.link(1.25e8, 5e-6) == (pytest.approx(1e9), pytest.approx(2e-5))


def test_calibration_file_round_trip(tmp_path):
    """save_calibration writes JSON that load_calibration reads back equal."""
    cal = _cal()  # one object: "created" is filled in at construction
    path = save_calibration(cal, tmp_path / "sub" / "cal.json")
    assert load_calibration(path) == cal
    assert json.loads(path.read_text())["kind"] == "rsdgc-calibration"


def test_load_calibration_errors(tmp_path):
    """Missing, non-JSON, wrong-kind and invalid files raise ScenarioFileError naming them."""
    with pytest.raises(ScenarioFileError, match="not found"):
        load_calibration(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ScenarioFileError, match="not readable JSON"):
        load_calibration(tmp_path / "bad.json")
    (tmp_path / "kind.json").write_text('{"kind": "profile"}')
    with pytest.raises(ScenarioFileError, match="not a calibration file"):
        load_calibration(tmp_path / "kind.json")
    (tmp_path / "inv.json").write_text(
        '{"kind": "rsdgc-calibration", "source": "emulated", "links": '
        '[{"alpha_s": 1e-4, "beta_s_per_byte": -1}]}'
    )
    with pytest.raises(ScenarioFileError, match="beta_s_per_byte"):
        load_calibration(tmp_path / "inv.json")


def test_calibration_module_does_not_import_torch():
    """The simulator side reads calibrations without torch."""
    code = "import sys, rsdgc_sim.calibration; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_tbf_args():
    """tbf: the rate in bit/s, a burst of 2 ms (at least one whole GSO packet: 64 KiB of
    payload and its 45 segments' IPv6 headers) and a 100 ms queue (>= 1 MiB)."""
    from rsdgc_sim.emulate.netns import MIN_BURST_BYTES, tbf_args

    assert tbf_args(12.5e6) == ["tbf", "rate", "100000000bit", "burst", str(MIN_BURST_BYTES),
                                "limit", "1250000"]  # fmt: skip
    assert MIN_BURST_BYTES >= 65536 + 45 * 86
    assert tbf_args(1.25e9)[4] == str(2_500_000)
    with pytest.raises(EmulationError, match="positive"):
        tbf_args(0)


@netns
@needs_netns
def test_shaped_link_sends_whole_gso_packets(no_leftovers):
    """A TCP flow through a 100 Mbit/s host link leaves tbf in GSO packets (tens of KB
    each), not split into MTU-sized ones (a packet over tbf's burst is split, and each piece
    costs a timer and a softirq): tbf waits for tokens far less often than once a packet."""
    from rsdgc_sim.emulate.netns import Network

    server = textwrap.dedent("""
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], 5599)); s.listen(1); print("up", flush=True)
        c, _ = s.accept(); n = 0
        while (b := c.recv(1 << 20)): n += len(b)
        print(n, flush=True)
    """)
    client = textwrap.dedent("""
        import socket, sys, time
        for _ in range(100):
            try:
                c = socket.create_connection((sys.argv[1], 5599)); break
            except OSError: time.sleep(0.05)
        c.sendall(bytes(3 << 20)); c.close()
    """)
    with Network(2, rate_bytes_per_s=12.5e6) as net:
        dst = net.hosts[1].addr
        srv = subprocess.Popen([*net.exec_prefix(1), sys.executable, "-c", server, dst],
                               stdout=subprocess.PIPE, text=True)
        try:
            assert srv.stdout.readline().strip() == "up"
            subprocess.run([*net.exec_prefix(0), sys.executable, "-c", client, dst],
                           check=True, timeout=30)
            assert int(srv.stdout.readline()) == 3 << 20
        finally:
            srv.kill()
            srv.wait()
        stats = subprocess.run(
            [*net.exec_prefix(0), "tc", "-s", "qdisc", "show", "dev", net.hosts[0].ifname],
            capture_output=True, text=True, check=True).stdout  # fmt: skip
    import re

    # tc counts the MTU-sized segments of a GSO packet as packets either way; "overlimits"
    # counts tbf's waits for tokens: one per packet when it splits them, one per GSO packet
    # (about 45 segments) when it does not
    sent, pkts, waits = map(int, re.search(
        r"Sent (\d+) bytes (\d+) pkt \(dropped \d+, overlimits (\d+)", stats).groups())
    assert sent >= 3 << 20, stats
    assert waits * 4 < pkts, stats


def test_netem_commands_give_each_link_half_the_latency():
    """A 2 ms host-to-host latency: the host's egress (inside its namespace, under its tbf)
    and the switch port's egress (under its tbf) each get 1 ms, so a packet from host a to
    host b (a's egress, then b's switch port) is delayed 2 ms, as the simulator's switch
    gives each of its two links half; an unshaped device gets netem at its root; no latency,
    no command."""
    from rsdgc_sim.emulate.netns import delay_commands

    cmds = delay_commands("ns0", "rsv0", "rsp0", 2e-3, host_shaped=True, port_shaped=True)
    assert cmds == [
        ["ip", "netns", "exec", "ns0", "tc", "qdisc", "add", "dev", "rsv0",
         "parent", "1:1", "handle", "10:", "netem", "delay", "1000us"],
        ["tc", "qdisc", "add", "dev", "rsp0", "parent", "1:1", "handle", "10:",
         "netem", "delay", "1000us"],
    ]  # fmt: skip
    cmds = delay_commands("ns0", "rsv0", "rsp0", 5e-4, host_shaped=True, port_shaped=False)
    assert cmds[1] == ["tc", "qdisc", "add", "dev", "rsp0", "root", "netem", "delay", "250us"]
    assert delay_commands("ns0", "rsv0", "rsp0", 0.0, host_shaped=False, port_shaped=False) == []


@netns
@needs_netns
@pytest.mark.skipif(not HAVE_NETNS or not __import__(
    "rsdgc_sim.emulate.netns", fromlist=["capabilities"]).capabilities().netem,
    reason="needs tc netem")  # fmt: skip
def test_netem_latency_is_the_scenarios_host_to_host(no_leftovers):
    """Where netem exists: 20 ms host-to-host latency gives a ping round trip of about 40 ms
    (20 ms each way), not 80 ms."""
    from rsdgc_sim.emulate.netns import Network

    with Network(2, rate_bytes_per_s=12.5e6, delay_s=0.02) as net:
        out = subprocess.run(
            [*net.exec_prefix(0), "ping", "-c", "3", "-i", "0.2", net.hosts[1].addr],
            capture_output=True, text=True, check=True).stdout  # fmt: skip
    import re

    avg_ms = float(re.search(r"= [\d.]+/([\d.]+)/", out)[1])
    assert 38 <= avg_ms <= 60, out


def test_core_plan_pins_ranks_to_cores_and_marks_oversubscription():
    """Ranks get the cores divided evenly (at least one thread), each pinned to cores of its
    own in order; more ranks x threads than cores wrap around and are oversubscribed."""
    from rsdgc_sim.emulate.cores import core_plan

    p = core_plan(2, cores=[0, 1])
    assert (p.threads, p.cpus, p.oversubscribed) == (1, [[0], [1]], False)
    p = core_plan(2, cores=[0, 1, 2, 3])
    assert (p.threads, p.cpus, p.oversubscribed) == (2, [[0, 1], [2, 3]], False)
    p = core_plan(4, cores=[0, 1])
    assert (p.threads, p.cpus, p.oversubscribed) == (1, [[0], [1], [0], [1]], True)
    p = core_plan(2, threads=2, cores=[5, 7])
    assert (p.cpus, p.oversubscribed) == ([[5, 7], [5, 7]], True)


def test_worker_pins_itself_to_its_rank_cores():
    """A spec's ``cpus`` list pins rank r to ``cpus[r]`` (os.sched_setaffinity)."""
    from rsdgc_sim.emulate.worker import pin

    before = os.sched_getaffinity(0)
    core = min(before)
    try:
        assert pin({"cpus": [[core], [core]]}, 1) == [core]
        assert os.sched_getaffinity(0) == {core}
        assert pin({}, 0) is None
    finally:
        os.sched_setaffinity(0, before)


def test_iqr_and_relative_error():
    """IQR with inclusive quartiles (1..5: Q1 = 2, Q3 = 4), 0 for one value; the relative
    error is (simulated - measured) / measured."""
    from rsdgc_sim.emulate.report import relative_error
    from rsdgc_sim.stats import iqr

    assert iqr([5.0, 1.0, 3.0, 2.0, 4.0]) == 2.0
    assert iqr([1.0]) == 0.0
    assert relative_error(1.1, 1.0) == pytest.approx(0.1)
    assert relative_error(None, 1.0) is None


# -- launcher faults (no torch in the ranks: fast) -------------------------------------


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_launch_collects_results_in_rank_order(tmp_path):
    """Every rank sees its RANK/WORLD_SIZE and its result comes back in rank order."""
    code = """
        import os
        from rsdgc_sim.emulate.launcher import write_result
        write_result({"rank": int(os.environ["RANK"]), "world": int(os.environ["WORLD_SIZE"])})
    """
    res = launch(_py(code), 3, timeout_s=60, workdir=tmp_path)
    assert res == [{"rank": r, "world": 3} for r in range(3)]


def test_crashing_rank_stops_the_others(tmp_path):
    """A rank that fails stops the run at once: the error names it, its exit code and its
    stderr, and the other (sleeping) rank is stopped, not waited for."""
    code = """
        import os, sys, time
        if os.environ["RANK"] == "1":
            print("boom from rank one", file=sys.stderr); sys.exit(3)
        time.sleep(60)
    """
    t0 = time.monotonic()
    with pytest.raises(EmulationError, match=r"rank 1 failed with exit code 3(.|\n)*boom from rank one"):
        launch(_py(code), 2, timeout_s=60, workdir=tmp_path)
    assert time.monotonic() - t0 < 20


def test_hung_rank_times_out(tmp_path):
    """A rank still running after the timeout is stopped with a clear error."""
    code = """
        import os, time
        if os.environ["RANK"] == "0":
            time.sleep(60)
    """
    with pytest.raises(EmulationError, match=r"rank\(s\) \[0\] still running after the 2 s timeout"):
        launch(_py(code), 2, timeout_s=2, workdir=tmp_path)


def test_rank_stuck_after_its_result_is_stopped_and_its_result_kept(tmp_path):
    """Every rank wrote its result, but one does not exit (as gloo's process group can hang
    at interpreter exit): after the exit grace it is stopped and the results come back, long
    before the timeout; a rank stuck *before* its result is still a hang."""
    code = """
        import os, time
        from rsdgc_sim.emulate.launcher import write_result
        write_result({"rank": int(os.environ["RANK"])})
        if os.environ["RANK"] == "1":
            time.sleep(60)
    """
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match=r"rank\(s\) \[1\] wrote their results but had "
                                            r"not exited 0.5 s later"):
        got = launch(_py(code), 2, timeout_s=60, workdir=tmp_path, exit_grace_s=0.5)
    assert got == [{"rank": 0}, {"rank": 1}]
    assert time.monotonic() - t0 < 20
    code = """
        import os, time
        from rsdgc_sim.emulate.launcher import write_result
        if os.environ["RANK"] == "1":
            time.sleep(60)
        write_result({"rank": int(os.environ["RANK"])})
    """
    with pytest.raises(EmulationError, match=r"rank\(s\) \[1\] still running after the 3 s"):
        launch(_py(code), 2, timeout_s=3, workdir=tmp_path, exit_grace_s=0.5)


def test_rank_without_result_is_an_error(tmp_path):
    """A rank that exits 0 without writing its result is reported, not silently skipped."""
    with pytest.raises(EmulationError, match="rank 0 exited cleanly but wrote no readable result"):
        launch(_py("pass"), 1, timeout_s=30, workdir=tmp_path)


# -- network namespaces ----------------------------------------------------------------


@netns
@needs_netns
def test_network_open_close_leaves_nothing(no_leftovers):
    """A 3-host emulated switch has its namespaces, addresses and tbf qdiscs; close removes
    all of it; two networks open at once have different names."""
    from rsdgc_sim.emulate.netns import Network, owned_by_run

    a, b = Network(3, rate_bytes_per_s=12.5e6), Network(2, rate_bytes_per_s=12.5e6)
    try:
        a.open()
        b.open()
        assert a.run_id != b.run_id and a.bridge != b.bridge
        assert len(owned_by_run(a.run_id)) == 1 + 3 + 3  # bridge, namespaces, outer veths
        assert [h.addr for h in a.hosts] == ["10.213.0.1", "10.213.0.2", "10.213.0.3"]
        q = subprocess.run(
            [*a.exec_prefix(1), "tc", "qdisc", "show", "dev", a.hosts[1].ifname],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "tbf" in q and "100Mbit" in q
    finally:
        a.close()
        b.close()
    assert a.leftovers() == [] and b.leftovers() == []
    a.close()  # twice is fine


@netns
@needs_netns
def test_failed_open_removes_what_was_made(no_leftovers):
    """When building the network fails half-way, what was made is removed before the error."""
    from rsdgc_sim.emulate.netns import Network

    net = Network(2, rate_bytes_per_s=12.5e6)
    os.makedirs("/run/netns", exist_ok=True)
    # occupy host 1's namespace name so that creating it fails
    clash = net.netns_name(1)
    subprocess.run(["ip", "netns", "add", clash], check=True)
    try:
        with pytest.raises(EmulationError, match="ip netns add"):
            net.open()
        assert net.leftovers() == [clash]
    finally:
        subprocess.run(["ip", "netns", "del", clash], check=False)


@netns
@needs_netns
def test_remove_stale_cleans_after_killed_runs(no_leftovers):
    """Namespaces and bridges of a run whose process is gone (SIGKILLed) are removed."""
    from rsdgc_sim.emulate import netns as nn

    code = textwrap.dedent("""
        import os, signal
        from rsdgc_sim.emulate.netns import Network
        net = Network(2).open()
        print(net.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    run_id = out.stdout.strip()
    assert run_id and nn.owned_by_run(run_id), out.stderr
    removed = nn.remove_stale()
    assert any(run_id in r for r in removed)
    assert nn.wait_gone(run_id, 3.0) == []


@netns
@needs_netns
def test_ctrl_c_stops_ranks_and_cleans_up(tmp_path, no_leftovers):
    """SIGINT to a run while its ranks are running: ranks stopped, network removed."""
    from rsdgc_sim.emulate import netns as nn

    # a shell's background jobs start with SIGINT ignored, and Python then installs no
    # handler: give the run the terminal's Ctrl-C whatever started this test
    code = textwrap.dedent("""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from rsdgc_sim.emulate.launcher import launch
        from rsdgc_sim.emulate.netns import Network
        net = Network(2, rate_bytes_per_s=12.5e6)
        try:
            net.open()
            print(net.run_id, flush=True)
            launch([sys.executable, "-c", "import time, os; print(os.getpid(), flush=True); time.sleep(120)"],
                   2, network=net, timeout_s=120, workdir=sys.argv[1])
        finally:
            net.close()
    """)
    err = open(tmp_path / "run.err", "w")  # noqa: SIM115 (read on failure below)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=err, text=True,
    )
    run_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 30
    pids: list[int] = []
    while time.monotonic() < deadline and len(pids) < 2:
        pids = []
        for r in range(2):
            f = tmp_path / f"rank{r}.out"
            if f.exists() and f.read_text().strip():
                pids.append(int(f.read_text().split()[0]))
        time.sleep(0.1)
    assert len(pids) == 2 and nn.owned_by_run(run_id)
    proc.send_signal(signal.SIGINT)
    try:  # a hang guard, not a timing
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"no exit 30 s after SIGINT; stderr:\n{(tmp_path / 'run.err').read_text()[-2000:]}")
    finally:
        err.close()
    assert proc.returncode != 0
    assert nn.wait_gone(run_id, 3.0) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- end to end --------------------------------------------------------------------------

SCENARIO = """
schema_version: 1
name: emu-test
model: {name: cnn_small, num_classes: 10, input_size: 32}
batch_size: 8
device: cpu
profile: {warmup: 1, iterations: 2}
compressors:
  - {name: none}
  - {name: topk, density: 0.01}
cluster:
  workers: 2
  bandwidth: 100Mbit/s
  latency: 0us
"""


@netns
@needs_netns
@pytest.mark.slow
def test_small_emulation_writes_emulate_json_and_cleans_up(tmp_path, no_leftovers):
    """`rsdgc-sim emulate` on 2 ranks at 100 Mbit/s runs cnn_small with `none` and `topk`,
    writes emulate.json with one case per compressor and prints the table; nothing of the
    network is left. (Timings are noisy on a shared machine: not asserted.)"""
    from click.testing import CliRunner

    from rsdgc_sim.cli.emulate import emulate_cmd

    (tmp_path / "s.yaml").write_text(SCENARIO)
    cal = save_calibration(
        Calibration(source="emulated", links=[
            LinkFit(nominal_bandwidth_bytes_per_s=12.5e6, alpha_s=1e-4, beta_s_per_byte=1 / 12e6)
        ]), tmp_path / "cal.json",
    )  # fmt: skip
    args = [str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--iterations", "3",
            "--warmup", "1", "--calibration", str(cal), "--timeout", "240"]  # fmt: skip
    res = CliRunner().invoke(emulate_cmd, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads((tmp_path / "out" / "emulate.json").read_text())
    assert data["mode"] == "netns"
    assert [c["compressor"] for c in data["cases"]] == ["none", "topk(density=0.01)"]
    for c in data["cases"]:
        assert c["workers"] == 2 and c["bandwidth_bytes_per_s"] == 12.5e6
        assert len(c["iteration_s"]) == 3
        m = c["measured_iteration_s"]
        assert m == pytest.approx(sorted(c["iteration_s"])[1])  # the median of three
        assert c["measured_iqr_s"] >= 0
        # both errors, each against the same measurement
        assert c["prediction_error"] == pytest.approx((c["predicted_iteration_s"] - m) / m)
        assert c["composition_error"] == pytest.approx((c["composed_iteration_s"] - m) / m)
        assert c["spread_exceeds_error"] == (c["measured_iqr_s"] / m > abs(c["prediction_error"]))
        # the prediction used the calibration (no interference in it) and a profile measured
        # before the run, alone, with one thread per rank on each rank's own core
        assert c["predicted_bandwidth_bytes_per_s"] == pytest.approx(12e6)
        assert c["interference_factor"] == 0.0
        assert c["profiled_compute_s"] > 0 and c["threads"] == max(1, os.cpu_count() // 2)
        assert len(c["cpus"]) == 2 and c["oversubscribed"] == (2 * c["threads"] > os.cpu_count())
    # the sparse case sent far less than the dense one
    assert data["cases"][1]["sent_bytes"] < data["cases"][0]["sent_bytes"] / 5
    assert "pred. err" in res.output and "comp. err" in res.output
    # a rerun with the same configuration measures nothing again
    again = CliRunner().invoke(emulate_cmd, args)
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert "already measured, skipped" in again.output
    data2 = json.loads((tmp_path / "out" / "emulate.json").read_text())
    assert [c["iteration_s"] for c in data2["cases"]] == [c["iteration_s"] for c in data["cases"]]


# -- prediction-side profile transforms (no torch) ---------------------------------------


def _profile():
    return three_tensor_profile({"a": (0.04, 0.004), "b": (0.02, 0.002), "c": (0.01, 0.001)},
                                wire_bytes=8, sparse=True)


def test_measured_compression_and_compute_scaling():
    """Compression is scaled to the hook's measured total (0.07 -> 0.14 s: x2), decompression
    counted as the simulator does (sparse: decompress + (ranks - 1) x accumulate, here
    0.007 + 0.0035 = 0.0105 -> 0.007 s: x2/3, applied to both); compute scaling multiplies
    forward, backward, optimizer and every gradient-ready time."""
    from rsdgc_sim.emulate.predict import with_compute_scale, with_measured_compression

    out = with_measured_compression(_profile(), "lbl", 0.14, 0.007, workers=2).devices[0]
    costs = out.compression["lbl"]
    assert costs["a"].compress_s == pytest.approx(0.08)
    assert costs["a"].decompress_s == pytest.approx(0.004 * 2 / 3)
    assert costs["a"].accumulate_s == pytest.approx(0.002 * 2 / 3)
    scaled = with_compute_scale(_profile(), 1.5).devices[0]
    assert (scaled.forward_s, scaled.backward_s, scaled.optimizer_s) == pytest.approx(
        (0.15, 0.45, 0.015)
    )
    assert scaled.grad_ready_s["b"] == pytest.approx(0.3)


def test_calibrated_point_replaces_only_the_link():
    """calibrated_point swaps bandwidth and latency for the calibrated ones and sets the
    calibrated interference factor (0: none measured), nothing else."""
    from rsdgc_sim.calibration import calibrated_point
    from rsdgc_sim.sim.config import SimPoint

    p = SimPoint(compressor="nsi", workers=8, bandwidth_bytes_per_s=1e6, latency_s=5e-6)
    q = calibrated_point(p, _cal())
    assert (q.bandwidth_bytes_per_s, q.latency_s) == (pytest.approx(0.9e6), pytest.approx(1.05e-4))
    assert q.interference_factor == 0.0
    assert q.model_dump(exclude={"bandwidth_bytes_per_s", "latency_s"}) == p.model_dump(
        exclude={"bandwidth_bytes_per_s", "latency_s"}
    )


@pytest.mark.slow
def test_loopback_fallback_keeps_measured_cases_when_a_point_fails(tmp_path, monkeypatch):
    """Without root or `ip netns` the ranks run on loopback, unshaped, and the notes say so.
    When the second point's ranks fail, the error names the point and the failing rank, the
    first point's cases are already in emulate.json, and a rerun skips them and measures
    only the second point."""
    import yaml

    from rsdgc_sim.emulate import orchestrate as emulate_run
    from rsdgc_sim.emulate.netns import Capabilities
    from rsdgc_sim.scenario import scenario_from_dict

    monkeypatch.setattr(
        emulate_run, "capabilities", lambda: Capabilities(False, False, False, "not running as root")
    )
    raw = yaml.safe_load(SCENARIO)
    raw["cluster"]["bandwidth"] = ["100Mbit/s", "200Mbit/s"]
    sc = scenario_from_dict(raw, source="test")
    cal = Calibration(source="loopback", links=[LinkFit(alpha_s=5e-5, beta_s_per_byte=1e-9)])
    real = emulate_run.launch_point
    launched, on_disk = [], []
    out = tmp_path / "out"

    def second_fails(workers, rate, delay_s, spec, timeout_s):
        launched.append(spec)
        if len(launched) == 2:
            # the first point's cases were written before the second point started
            on_disk.append(json.loads((out / "emulate.json").read_text()))
            raise EmulationError("rank 1 failed with exit code 1; the other ranks were stopped")
        return real(workers, rate, delay_s, spec, timeout_s)

    monkeypatch.setattr(emulate_run, "launch_point", second_fails)
    # the profile measured alone once for both emulations (the rerun's resume is the point
    # here, not a second measurement of the same profile: ~20 s of this test's time)
    measured = {}
    real_profile = emulate_run.measure_profile_alone

    def profile_once(*args, **kwargs):
        if "profile" not in measured:
            measured["profile"] = real_profile(*args, **kwargs)
        return measured["profile"]

    monkeypatch.setattr(emulate_run, "measure_profile_alone", profile_once)
    kw = dict(iterations=1, warmup=0, calibration=cal, timeout_s=240, out_dir=out)
    with pytest.raises(EmulationError, match=r"2 ranks at 200 Mbit/s: rank 1 failed.*"
                                             r"the 2 case\(s\) measured before"):
        emulate_run.emulate_scenario(sc, **kw)
    first = json.loads((out / "emulate.json").read_text())
    assert on_disk == [first]
    assert first["mode"] == "loopback"
    assert any("not running as root" in n and "UNSHAPED" in n for n in first["notes"])
    assert [(c["compressor"], c["bandwidth_bytes_per_s"]) for c in first["cases"]] == [
        ("none", 12.5e6), ("topk(density=0.01)", 12.5e6)]
    said = []
    rep = emulate_run.emulate_scenario(sc, **kw, progress=said.append)
    assert len(launched) == 3  # only the second point ran again
    assert any("100 Mbit/s: already measured, skipped" in m for m in said)
    assert [c.bandwidth_bytes_per_s for c in rep.cases] == [12.5e6, 12.5e6, 25e6, 25e6]
    assert [c.iteration_s for c in rep.cases[:2]] == [c["iteration_s"] for c in first["cases"]]
    assert all(c.measured_iteration_s > 0 and c.prediction_error is not None for c in rep.cases)
