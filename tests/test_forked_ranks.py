"""Ranks forked from a server with torch imported (:mod:`rsdgc_sim.emulate.forked`, opt-in:
``RSDGC_SIM_FORK_RANKS=1``, which this suite sets) are the subprocesses they replace: the
launcher's environment, their own session, stdin empty, their output in the launcher's
files, the host's network namespace, the exit code; the same probe gives the same answers
either way."""

from __future__ import annotations

import os
import sys

import pytest
from test_emulate import HAVE_NETNS, needs_netns, netns, no_leftovers  # noqa: F401

from rsdgc_sim.emulate import forked
from rsdgc_sim.emulate.launcher import launch, python_argv
from rsdgc_sim.errors import EmulationError

MODES = ["1", "0"]  # forked, subprocess
#: rank_probe lives beside this file
PATH = {"PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}


def test_which_argv_forks():
    assert forked.module_of(python_argv("rank_probe", "a", "b")) == ("rank_probe", ["a", "b"])
    assert forked.module_of([sys.executable, "-c", "pass"]) is None
    assert forked.module_of(["python3", "-m", "rank_probe"]) is None  # another interpreter
    assert forked.module_of([sys.executable, "-m"]) is None


@pytest.mark.parametrize("value, on", [(None, False), ("0", False), ("1", True),
                                       ("true", True), ("off", False)])
def test_opt_in(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv(forked.ENV, raising=False)
    else:
        monkeypatch.setenv(forked.ENV, value)
    assert forked.enabled() is on
    started = forked.start_rank([sys.executable, "-c", "pass"], {}, None, "o", "e")
    assert started is None  # not python -m: always a subprocess


@pytest.mark.parametrize("mode", MODES)
def test_a_rank_on_loopback(tmp_path, monkeypatch, mode):
    monkeypatch.setenv(forked.ENV, mode)
    res = launch(python_argv("rank_probe", "x"), 2, env={**PATH, "PROBE": "p"}, workdir=tmp_path,
                 timeout_s=60)
    assert [r["rank"] for r in res] == ["0", "1"]
    for r in res:
        assert r["probe"] == "p" and r["argv"] == ["x"] and r["own_session"] and r["stdin"] == ""
        assert r["netns"] == os.readlink("/proc/self/ns/net")
    assert (tmp_path / "rank1.out").read_text() == "probe stdout\n"
    assert (tmp_path / "rank1.err").read_text() == "probe stderr\n"


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_rank_is_named_with_its_stderr(tmp_path, monkeypatch, mode):
    monkeypatch.setenv(forked.ENV, mode)
    with pytest.raises(EmulationError, match=r"rank 0 failed with exit code 3.*\n.*probe stderr"):
        launch(python_argv("rank_probe"), 1, env={**PATH, "PROBE_EXIT": "3"}, workdir=tmp_path,
               timeout_s=60)


@netns
@needs_netns
@pytest.mark.parametrize("mode", MODES)
def test_a_rank_in_its_hosts_namespace(tmp_path, monkeypatch, mode, no_leftovers):  # noqa: F811
    """In a network namespace the rank sees its host's veth, not this namespace's links."""
    from rsdgc_sim.emulate.netns import Network

    monkeypatch.setenv(forked.ENV, mode)
    net = Network(2, rate_bytes_per_s=12.5e6)
    try:
        net.open()
        ifnames = [h.ifname for h in net.hosts]
        res = launch(python_argv("rank_probe"), 2, network=net, env=PATH, workdir=tmp_path,
                     timeout_s=60)
    finally:
        net.close()
    here = os.readlink("/proc/self/ns/net")
    for r, ifname in zip(res, ifnames, strict=True):
        assert r["netns"] != here and ifname in r["ifaces"] and r["own_session"]
    assert res[0]["netns"] != res[1]["netns"]
