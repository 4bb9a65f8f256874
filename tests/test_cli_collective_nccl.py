"""`rsdgc-sim collective` with NCCL's collectives: JSON algbw/busbw and the NCCL choice,
`--bandwidth` optional where the topology's links carry their own, one-line errors for bad
`--param` values, `--explain`'s tuner table, and one topology build for `--fidelity link`."""

from __future__ import annotations

import importlib
import json
import time

import pytest
from click.testing import CliRunner
from helpers import one_line_error

from rsdgc_sim.cli import cli

cli_collective = importlib.import_module("rsdgc_sim.cli.collective")
#: the module (``rsdgc_sim.sim.collective_time`` the attribute is the function)
collective_time_module = importlib.import_module("rsdgc_sim.sim.collective_time")

BASE = ["--workers", "8", "--bytes", "1MB", "--bandwidth", "1GB/s"]
DGX = ["--topology", "gpu_cluster", "--topology-param", "preset=dgx_h100"]


def run(*args: str):
    return CliRunner().invoke(cli, ["collective", *args])


def test_json_reports_time_bandwidths_and_nccl_choice():
    """nccl --json: the old keys, plus time_s, nccl-tests' algbw (S/t) and busbw (algbw
    2(p-1)/p), and the algorithm and protocol chosen; ring: the same keys, nulls for NCCL."""
    r = run("-a", "nccl", *BASE, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    for k in ("algorithm", "workers", "bytes", "simulated_s", "closed_form_s", "events",
              "wall_s", "fidelity", "exact", "topology", "bandwidth_bytes_per_s", "latency_s"):
        assert k in out
    assert out["time_s"] == out["simulated_s"]
    assert out["algbw_bytes_per_s"] == pytest.approx(1e6 / out["time_s"], rel=1e-12)
    assert out["busbw_bytes_per_s"] == pytest.approx(out["algbw_bytes_per_s"] * 14 / 8,
                                                     rel=1e-12)
    assert (out["nccl_algorithm"], out["nccl_protocol"]) == ("ring", "simple")
    assert out["chosen"] == "ring/simple"
    ring = json.loads(run("-a", "ring", *BASE, "--json").output)
    assert ring["nccl_algorithm"] is None and ring["nccl_protocol"] is None
    assert ring["busbw_bytes_per_s"] == pytest.approx(1e9, rel=1e-12)  # no latency
    ag = json.loads(run("-a", "nccl_allgather", *BASE, "--json").output)
    assert ag["algbw_bytes_per_s"] == pytest.approx(8e6 / ag["time_s"], rel=1e-12)
    assert ag["busbw_bytes_per_s"] == pytest.approx(ag["algbw_bytes_per_s"] * 7 / 8, rel=1e-12)


def test_param_forces_algorithm_and_protocol():
    """--param protocol=ll / algorithm=tree force NCCL's choice (NCCL_PROTO, NCCL_ALGO)."""
    out = json.loads(run("-a", "nccl", *BASE, "--param", "protocol=ll", "--param",
                         "algorithm=tree", "--json").output)
    assert (out["nccl_algorithm"], out["nccl_protocol"]) == ("tree", "ll")


def test_bandwidth_optional_only_where_links_carry_it():
    """gpu_cluster with a preset needs no --bandwidth (JSON: null); switch without it is a
    one-line error naming --bandwidth."""
    r = run("-a", "nccl", "-p", "16", "--bytes", "1GB", *DGX, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["bandwidth_bytes_per_s"] is None and out["nccl_protocol"] == "simple"
    text = " ".join(run("-a", "nccl", "-p", "16", "--bytes", "1GB", *DGX).output.split())
    # two DGX H100 nodes: NVLink SHARP inside each node, a tree between them
    assert "its links' own bandwidths" in text and "(nvls_tree/simple)" in text
    t0 = time.perf_counter()
    one_line_error(run("-a", "ring", "-p", "8", "--bytes", "1MB"),
                   r"bandwidth: required for topology 'switch'.*--bandwidth", t0)


@pytest.mark.parametrize("param, pattern", [
    ("protocol=fast", r"protocol must be one of ll, ll128, simple, got 'fast'"),
    ("algorithm=butterfly",
     r"algorithm must be one of tree, ring, nvls, nvls_tree, got 'butterfly'"),
    ("channels=100", r"channels must be an integer from 1 to 64, got 100"),
    ("gpu=kepler", r"gpu must be one of volta, ampere, hopper, blackwell"),
    ("chunks=2", r"unknown parameter 'chunks'"),
])
def test_bad_param_is_one_line(param, pattern):
    t0 = time.perf_counter()
    one_line_error(run("-a", "nccl", *BASE, "--param", param), pattern, t0)


def test_link_fidelity_refused_for_nccl():
    """--fidelity link on NCCL's model: one line naming analytic."""
    t0 = time.perf_counter()
    one_line_error(run("-a", "nccl", *BASE, "--fidelity", "link"),
                   r"closed-form model.*use fidelity analytic or auto", t0)


def test_explain_shows_the_tuner():
    """--explain: the chosen formula with numbers, every candidate's time, the choice."""
    r = run("-a", "nccl", *BASE, "--explain")
    assert r.exit_code == 0, r.output
    for s in ("T = lat + nB", "tuner, nBytes = 1e+06 B:", "ring/ll:", "tree/simple:",
              "chosen: ring/simple"):
        assert s in r.output, s


def test_help_lists_the_nccl_collectives():
    out = run("--help").output
    for name in ("nccl", "nccl_allgather", "nccl_reduce_scatter", "protocol=simple|ll|ll128"):
        assert name in out


@pytest.mark.parametrize("algorithm", ["ring", "auto"])
def test_link_fidelity_builds_the_topology_once(monkeypatch, algorithm):
    """--fidelity link: the topology built to check the run's cost is the one it runs on."""
    calls = []
    real = cli_collective.build_topology

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_collective, "build_topology", counting)
    monkeypatch.setattr(collective_time_module, "build_topology", counting)
    r = run("-a", algorithm, *BASE, "--fidelity", "link", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["fidelity"] == "link"
    assert calls == ["switch"]


def test_a_bandwidth_the_nic_parameter_overrules_is_refused():
    """--bandwidth is the NICs'; with a nic parameter that says otherwise the time printed
    beside it would not be its own: one line naming both. Matching, or no --bandwidth, runs."""
    args = ("-a", "ring", "-p", "16", "--bytes", "1MB", *DGX, "--topology-param", "nic=100Gbit/s")
    t0 = time.perf_counter()
    one_line_error(run(*args, "--bandwidth", "10Gbit/s"),
                   r"--bandwidth 10Gbit/s: gpu_cluster's nic parameter makes its NICs "
                   r"100Gbit/s", t0)
    assert run(*args, "--bandwidth", "100Gbit/s").exit_code == 0
    assert run(*args).exit_code == 0
