"""Every bad topology or `collective` input is one line (issue 9): tables of hostile
topology parameters, topology files and `collective` command lines. Library calls raise one
RsdgcError naming the parameter (or the file); the command exits with code 2 and one line
on stderr, no traceback; every case ends (or is refused) in well under 10 s, sizes that
cannot fit included."""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import one_line_error

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError, RsdgcError, ScenarioFileError, TopologyError
from rsdgc_sim.sim import build_topology
from rsdgc_sim.sim.topology import check_topology_params, topology_size

BW, LAT = 1.25e9, 5e-6
LIMIT_S = 10.0

FAT = "parameters: k, oversubscription, link_overrides"
TWO = "parameters: gpus_per_node, intra_bandwidth, intra_latency, allow_partial, link_overrides"

#: (topology, hosts, params, exception, pattern of the one-line message)
PARAMS = [
    ("fat_tree", 16, {"k": "4"}, ConfigError, rf"topology 'fat_tree': k: Input should be a valid integer \(got '4'\); {FAT}"),
    ("fat_tree", 16, {"k": 4.0}, ConfigError, r"k: Input should be a valid integer \(got 4\.0\)"),
    ("fat_tree", 16, {"k": True}, ConfigError, r"k: Input should be a valid integer \(got True\)"),
    ("fat_tree", 16, {"k": None}, ConfigError, r"k: Input should be a valid integer \(got None\)"),
    ("fat_tree", 16, {"k": 3}, ConfigError, rf"k: must be an even number >= 2, got 3; {FAT}"),
    ("fat_tree", 16, {"k": 0}, ConfigError, r"k: Input should be greater than or equal to 2"),
    ("fat_tree", 16, {"k": 10**30}, ConfigError, r"k: Input should be less than or equal to 1000000000"),
    ("fat_tree", 16, {"k": 4, "oversubscription": True}, ConfigError, r"oversubscription: Input should be a valid number \(got True\)"),
    ("fat_tree", 16, {"k": 4, "oversubscription": math.nan}, ConfigError, r"oversubscription: Input should be a finite number"),
    ("fat_tree", 16, {"k": 4, "oversubscription": 0.5}, ConfigError, r"oversubscription: Input should be greater than or equal to 1"),
    ("fat_tree", 4, {"k": 1000}, TopologyError, r"topology 'fat_tree' with k=1000 for 4 hosts would have 1,250,004 nodes and 500,000,004 links .*more than the 2,000,000 nodes \+ links built here; use a smaller k \(k=4 holds 16 hosts\)"),
    ("fat_tree", 20, {"k": 4}, TopologyError, r"20 hosts do not fit a k=4 fat tree"),
    ("tree", 16, {"arity": 2.5}, ConfigError, r"topology 'tree': arity: Input should be a valid integer \(got 2\.5\); parameters: arity, link_overrides"),
    ("tree", 16, {"arity": 1}, ConfigError, r"arity: Input should be greater than or equal to 2"),
    ("tree", 16, {"arity": False}, ConfigError, r"arity: Input should be a valid integer \(got False\)"),
    ("two_level", 16, {"gpus_per_node": "2"}, ConfigError, rf"topology 'two_level': gpus_per_node: Input should be a valid integer \(got '2'\); {TWO}"),
    ("two_level", 16, {"gpus_per_node": "abc"}, ConfigError, r"gpus_per_node: Input should be a valid integer \(got 'abc'\)"),
    ("two_level", 16, {"gpus_per_node": 0}, ConfigError, r"gpus_per_node: Input should be greater than or equal to 1"),
    ("two_level", 16, {"intra_bandwidth": "fast"}, ConfigError, r"intra_bandwidth: cannot read 'fast'"),
    ("two_level", 16, {"intra_bandwidth": math.inf}, ConfigError, r"intra_bandwidth: cannot read inf"),
    ("two_level", 16, {"intra_bandwidth": "1e-320B/s"}, ConfigError, r"intra_bandwidth: Input should be greater than or equal to 1"),
    ("two_level", 16, {"intra_latency": "1e308s"}, ConfigError, r"intra_latency: Input should be less than or equal to 3600"),
    ("two_level", 16, {"intra_latency": "-1s"}, ConfigError, r"intra_latency: Input should be greater than or equal to 0"),
    ("two_level", 16, {"allow_partial": "yes"}, ConfigError, r"allow_partial: Input should be a valid boolean \(got 'yes'\)"),
    ("torus2d", 16, {"rows": "2"}, ConfigError, r"topology 'torus2d': rows: Input should be a valid integer \(got '2'\); parameters: rows, cols, link_overrides"),
    ("torus2d", 16, {"cols": 2.0}, ConfigError, r"cols: Input should be a valid integer \(got 2\.0\)"),
    ("switch", 8, {"radix": 4}, ConfigError, r"topology 'switch': unknown parameter 'radix'; parameters: link_overrides"),
    ("switch", 8, {"link_overrides": 5}, ConfigError, r"topology 'switch': link_overrides: Input should be a valid list \(got 5\); parameters: link_overrides"),
    ("switch", 8, {"link_overrides": [{"between": ["h0"]}]}, ConfigError, r"link_overrides\[0\]\.between: expected two node names \[a, b\], got \['h0'\]"),
    ("switch", 8, {"link_overrides": [{"between": ["h0", "h0"]}]}, ConfigError, r"link_overrides\[0\]\.between: a link joins two different nodes"),
    ("switch", 8, {"link_overrides": ["h0"]}, ConfigError, r"link_overrides\[0\]: Input should be a valid dictionary"),
    ("switch", 8, {"link_overrides": [{"between": ["h0", "sw"], "speed": 1}]}, ConfigError, r"link_overrides\[0\]\.speed: unknown key; allowed: between, bandwidth, latency"),
    ("switch", 8, {"link_overrides": [{"between": ["h0", "sw"], "bandwidth": "fast"}]}, ConfigError, r"link_overrides\[0\]\.bandwidth: cannot read 'fast'"),
    ("switch", 8, {"link_overrides": [{"between": ["h0", "sw"], "latency": True}]}, ConfigError, r"link_overrides\[0\]\.latency: cannot read True"),
    ("switch", 8, {"link_overrides": [{"between": ["h0", "h1"]}]}, ConfigError, r"link_overrides\[0\]\.between: no link between 'h0' and 'h1'"),
    ("switch", 8, [("k", 4)], ConfigError, r"topology 'switch': parameters must be a mapping"),
    ("ring", 10**9, {}, TopologyError, r"topology 'ring' for 1,000,000,000 hosts would have 1,000,000,000 nodes and 1,000,000,000 links .*use fewer workers"),
    ("fat_tree", 4, {"k": 200, "link_overrides": [{"between": ["h0", "e0_0"]}]}, TopologyError, r"with k=200 for 4 hosts would have .*more than the 2,000,000 nodes \+ links built here; use a smaller k"),
    ("file", 4, {}, ConfigError, r"topology 'file': path: required field is missing"),
]


def _one_line(exc: BaseException, pattern: str) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 600, text
    assert re.search(pattern, text), text


@pytest.mark.parametrize("name, hosts, params, exc, pattern", PARAMS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(PARAMS)])
def test_bad_topology_parameters(name, hosts, params, exc, pattern):
    """Wrong types (a string, a float or a bool for an integer), out-of-range and
    non-finite values, unknown names, malformed overrides and sizes beyond any machine:
    one error naming the parameter and listing the generator's parameters, raised before
    anything large is built."""
    t0 = time.perf_counter()
    with pytest.raises(exc) as info:
        build_topology(name, hosts, BW, LAT, params)
    assert time.perf_counter() - t0 < LIMIT_S
    _one_line(info.value, pattern)


def test_parameters_checked_without_building():
    """The parameter classes check and size a topology without building it."""
    assert check_topology_params("fat_tree", {"k": 8}).k == 8
    with pytest.raises(ConfigError, match=r"k: must be an even number"):
        check_topology_params("fat_tree", {"k": 7})
    size = topology_size("fat_tree", 4, {"k": 1000})
    assert (size.nodes, size.links) == (4 + 250_000 + 1_000_000, 4 + 500_000_000)
    assert topology_size("ring", 8).links == 8 and topology_size("switch", 8).nodes == 9


@pytest.mark.parametrize("hosts, bandwidth, latency, pattern", [
    (True, BW, LAT, r"workers: must be an integer, got True"),
    (0, BW, LAT, r"workers: must be >= 1, got 0"),
    (4.0, BW, LAT, r"workers: must be an integer, got 4\.0"),
    (4, "fast", LAT, r"bandwidth: bandwidth must be a number of bytes/s, got 'fast'"),
    (4, True, LAT, r"bandwidth: bandwidth must be a number of bytes/s, got True"),
    (4, BW, math.nan, r"latency: latency must be >= 0 s, got nan"),
])
def test_bad_build_arguments(hosts, bandwidth, latency, pattern):
    with pytest.raises(ConfigError) as info:
        build_topology("switch", hosts, bandwidth, latency)
    _one_line(info.value, pattern)


def test_a_switch_of_a_billion_hosts_is_checked_when_its_links_are_built():
    """``switch`` builds no links until they are used (its closed forms need none), so a
    billion hosts are accepted at once, and refused with the estimate once routed."""
    t0 = time.perf_counter()
    topo = build_topology("switch", 10**9, BW, LAT)
    with pytest.raises(TopologyError, match=r"topology 'switch' for 1,000,000,000 hosts "
                                            r"would have 1,000,000,001 nodes"):
        topo.route(0, 1)
    assert time.perf_counter() - t0 < LIMIT_S


# -- files ----------------------------------------------------------------------------------
HOSTS = "hosts: [a, b]\nswitches: [s]\n"
LINKS = "links:\n  - {between: [a, s]}\n  - {between: [b, s]}\n"


def _bomb() -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _line(n: int) -> str:
    """n hosts in a line, linked host to host: every host is its own destination."""
    hosts = ", ".join(f"h{i}" for i in range(n))
    links = "".join(f"  - {{between: [h{i}, h{i + 1}]}}\n" for i in range(n - 1))
    return f"hosts: [{hosts}]\nlinks:\n{links}"


#: (file text or bytes, hosts, pattern of the one-line message after the file's name)
FILES = [
    (HOSTS + LINKS + "hosts: [c]\n", 2, r"key 'hosts' is given twice \(lines 1 and 6\)"),
    (_bomb(), 2, r"expand to more than 100,000"),
    (b"hosts: [a\xff]\n", 1, r"not UTF-8"),
    ("- a\n- b\n", 2, r"expected a mapping at the top, got list"),
    ("", 2, r"expected a mapping at the top, got NoneType"),
    ("hosts: [a, b, a]\nswitches: [s]\n" + LINKS, 2, r"hosts\[2\]: 'a' is given twice"),
    ("hosts: [a, b]\nswitches: [s, s]\n" + LINKS, 2, r"switches\[1\]: 's' is given twice"),
    ("hosts: [a, b]\nswitches: [s, b]\n" + LINKS, 2, r"switches\[1\]: 'b' is also in hosts"),
    (HOSTS + LINKS + "  - {between: [a, z]}\n", 2, r"links\[2\]\.between: unknown node 'z'"),
    (HOSTS + LINKS + "  - {between: [s, a]}\n", 2, r"links\[2\]: the link between 's' and 'a' is given twice \(links\[0\]\)"),
    (HOSTS + LINKS + "  - {between: [a, a]}\n", 2, r"links\[2\]\.between: a link joins two different nodes"),
    (HOSTS + LINKS + "wires: []\n", 2, r"wires: unknown key; allowed: name, description, generator"),
    ("hosts: [1, 2]\n", 2, r"hosts\[0\]: Input should be a valid string \(got 1\)"),
    (HOSTS + "links:\n  - {between: [a, s], bandwidth: fast}\n  - {between: [b, s]}\n", 2, r"links\[0\]\.bandwidth: cannot read 'fast'"),
    (HOSTS + "links:\n  - {between: [a, s], bandwidth: .inf}\n  - {between: [b, s]}\n", 2, r"links\[0\]\.bandwidth: cannot read inf"),
    (HOSTS + "links:\n  - {between: [a, s], latency: 1.0e+308s}\n  - {between: [b, s]}\n", 2, r"links\[0\]\.latency: Input should be less than or equal to 3600"),
    (HOSTS + LINKS + "link_overrides:\n  - {between: [a, b]}\n", 2, r"link_overrides\[0\]\.between: no link between 'a' and 'b'"),
    ("generator: fat_tree\nparams: {k: '4'}\n", 16, r"params: topology 'fat_tree': k: Input should be a valid integer \(got '4'\)"),
    ("generator: fat_tree\nparams: {k: 1000}\n", 4, r"topology 'fat_tree' with k=1000 for 4 hosts would have"),
    ("generator: mesh\n", 2, r"generator: unknown topology 'mesh'; choose one of"),
    ("generator: ring\nhosts: [a]\n", 2, r"give either generator \(with params\) or hosts"),
    ("params: {k: 4}\nhosts: [a]\n", 1, r"params: only a generator takes params"),
    ("hosts: [a, b, c]\nswitches: [s]\nlinks:\n  - {between: [a, s]}\n  - {between: [b, s]}\n", 3, r"graph is disconnected"),
    (HOSTS + LINKS, 3, r"3 hosts needed but topology 't' has 2"),
    (_line(3000), 3000, r"routing [\d,]+ transfers needs shortest-path searches from \S+ destinations over 3,000 nodes and 2,999 links .*use fewer workers"),
]


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "t.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("text, hosts, pattern", FILES, ids=range(len(FILES)))
def test_bad_topology_files(tmp_path, text, hosts, pattern):
    """Duplicate keys, alias bombs, invalid UTF-8, the wrong shape, repeated node names
    (hosts, switches, a host also a switch), links to unknown nodes or given twice, bad
    link values and parameters, a graph whose routes would need too many searches: one
    line naming the file and the field (the library raises it, the command prints it)."""
    path = _write(tmp_path, text)
    t0 = time.perf_counter()
    with pytest.raises(RsdgcError) as info:
        topo = build_topology(str(path), hosts, BW, LAT)
        topo.pattern_cost(("shift", hosts), [(i, (i + 1) % hosts) for i in range(hosts - 1)])
    assert time.perf_counter() - t0 < LIMIT_S
    _one_line(info.value, pattern)
    if not re.search("disconnected|hosts needed|routing", pattern):
        assert str(path) in str(info.value)
    result = _collective(["-a", "ring", "-p", str(hosts), "--topology", str(path), *B])
    line = one_line_error(result, pattern, t0, LIMIT_S, stdout_empty=True)
    if not re.search("disconnected|hosts needed|routing", pattern):
        assert str(path) in line


def test_topology_paths_that_are_not_files(tmp_path):
    """A FIFO (would block), /dev/zero (never ends), a folder, a missing file, a NUL byte:
    one line each, at once."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    for path, exc, pattern in [
        (fifo, ScenarioFileError, r"topology file .*fifo\.yaml: (a FIFO|not a regular file)"),
        ("/dev/zero", ScenarioFileError, r"topology file /dev/zero: (a device|not a regular file)"),
        (folder, ScenarioFileError, r"topology file .*folder\.yaml: (is )?a directory"),
        (tmp_path / "nope.yaml", ScenarioFileError, r"topology file .*nope\.yaml: no such file"),
        ("a\0b.yaml", ScenarioFileError, r"topology file a\\0b\.yaml: (cannot read|unreadable)"),
    ]:
        t0 = time.perf_counter()
        with pytest.raises(exc) as info:
            build_topology(str(path), 2, BW, LAT)
        assert time.perf_counter() - t0 < LIMIT_S
        _one_line(info.value, pattern)
    for path, pattern in [(fifo, r"fifo\.yaml: (a FIFO|not a regular file)"),
                          ("/dev/zero", r"/dev/zero: (a device|not a regular file)"),
                          (folder, r"'--topology': File .*folder\.yaml' is a directory"),
                          (tmp_path / "nope.yaml", r"'--topology': File .*nope\.yaml' does not exist"),
                          ("a\0b.yaml", r"NUL byte")]:
        t0 = time.perf_counter()
        one_line_error(_collective(["-a", "ring", "-p", "2", "--topology", str(path), *B]), pattern, t0, LIMIT_S, stdout_empty=True)


def test_exponentially_many_shortest_paths_are_not_listed(tmp_path):
    """A 20 x 20 grid of switches with hosts at its corners has C(38, 19) = 3.5e10 shortest
    paths between opposite corners: routes are found by counting them (one search per
    destination), never by listing them, so a collective on it takes well under a second."""
    n = 20
    sw = [f"s{i}_{j}" for i in range(n) for j in range(n)]
    links = [f"  - {{between: [s{i}_{j}, s{i}_{j + 1}]}}" for i in range(n) for j in range(n - 1)]
    links += [f"  - {{between: [s{i}_{j}, s{i + 1}_{j}]}}" for i in range(n - 1) for j in range(n)]
    corners = [(0, 0), (0, n - 1), (n - 1, n - 1), (n - 1, 0)]
    links += [f"  - {{between: [h{k}, s{i}_{j}]}}" for k, (i, j) in enumerate(corners)]
    path = tmp_path / "grid.yaml"
    path.write_text(f"hosts: [h0, h1, h2, h3]\nswitches: [{', '.join(sw)}]\nlinks:\n"
                    + "\n".join(links) + "\n")
    t0 = time.perf_counter()
    result = _collective(["-a", "ring", "-p", "4", "--topology", str(path), *B, "--fidelity",
                          "link", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["simulated_s"] > 0
    topo = build_topology(str(path), 4, BW, LAT)
    assert len(topo.route(0, 2).links) == 2 + 2 * (n - 1)
    assert time.perf_counter() - t0 < LIMIT_S


# -- the collective command -----------------------------------------------------------------
B = ["--bytes", "1MB", "--bandwidth", "10Gbit/s"]
R = ["-a", "ring", "-p", "8", *B]

#: (arguments after `collective`, pattern of the one stderr line)
COMMANDS = [
    # sizes that could not fit, or ran past 60 s (the examples)
    (["-p", "1000000", "-a", "auto", *B], r"--workers: 1,000,000 ranks is more than the 65,536 simulated at step or link fidelity.*--fidelity analytic"),
    (["-p", "100000", "--fidelity", "link", "-a", "ring", *B], r"--workers: 100,000 ranks is more than the 65,536"),
    (["-p", "100000", "--topology", "ring", "-a", "ring", *B], r"--workers: 100,000 ranks is more than the 65,536"),
    (["-p", "4", "--topology", "fat_tree", "--topology-param", "k=1000", "-a", "ring", *B], r"topology 'fat_tree' with k=1000 for 4 hosts would have .*use a smaller k \(k=4 holds 16 hosts\)"),
    (["-p", "1000000000", "--topology", "ring", "--fidelity", "analytic", "-a", "ring", *B], r"topology 'ring' for 1,000,000,000 hosts would have 1,000,000,000 nodes and 1,000,000,000 links"),
    (["-p", "1000000000", "--fidelity", "step", "-a", "ring", *B], r"--workers: 1,000,000,000 ranks is more than the 65,536"),
    (["-p", "2000000000", "--fidelity", "analytic", "-a", "ring", *B], r"--workers: 2,000,000,000 is more than the 1,000,000,000 ranks answered even in closed form"),
    (["-p", "1000", "--fidelity", "link", "-a", "ring", *B], r"--fidelity link: 'ring' on 1,000 workers of topology 'switch' would simulate 1,998,000 transfers as flows, expected to take more than 5 s.*--fidelity step"),
    (["-p", "1000", "--fidelity", "link", "-a", "parameter_server", *B], r"--fidelity link: 'parameter_server' on 1,000 workers .*2,000 transfers"),
    (["-p", "65536", "--fidelity", "link", "-a", "auto", *B], r"--fidelity link: 'ring' on 65,536 workers"),
    (["-p", "65536", "--fidelity", "step", "-a", "parameter_server", "--param", "shards=64", *B], r"parameter_server': 65,536 workers x 64 shards = 4,194,304 transfers per phase"),
    (["-p", "64", "--fidelity", "link", "-a", "ring", "--param", "chunks=1000000", *B], r"--fidelity link: 'ring' on 64 workers .*8,064,000,000 transfers"),
    # topology parameters
    (["--topology", "fat_tree", "--topology-param", "k", *R], r"--topology-param: expected KEY=VALUE, got 'k'"),
    (["--topology", "fat_tree", "--topology-param", "=4", *R], r"--topology-param: expected KEY=VALUE, got '=4'"),
    (["--topology", "fat_tree", "--topology-param", "k=", *R], r"topology 'fat_tree': k: Input should be a valid integer \(got None\); parameters: k, "),
    (["--topology", "fat_tree", "--topology-param", "k=abc", *R], r"k: Input should be a valid integer \(got 'abc'\)"),
    (["--topology", "fat_tree", "--topology-param", "k=1e999", *R], r"k: Input should be a valid integer \(got '1e999'\)"),
    (["--topology", "fat_tree", "--topology-param", "k=1.0e+999", *R], r"k: Input should be a valid integer \(got inf\)"),
    (["--topology", "fat_tree", "--topology-param", "k=4.0", *R], r"k: Input should be a valid integer \(got 4\.0\)"),
    (["--topology", "fat_tree", "--topology-param", "k=true", *R], r"k: Input should be a valid integer \(got True\)"),
    (["--topology", "fat_tree", "--topology-param", "k=4", "--topology-param", "k=6", *R], r"--topology-param: k is given twice"),
    (["--topology", "fat_tree", "--topology-param", "k=" + "9" * 5000, *R], r"k: Input should be a valid integer \(got '9999"),
    (["--topology", "tree", "--topology-param", "arity=2.5", *R], r"topology 'tree': arity: Input should be a valid integer \(got 2\.5\)"),
    (["--topology", "two_level", "--topology-param", "gpus_per_node='2'", *R], r"gpus_per_node: Input should be a valid integer \(got '2'\)"),
    (["--topology", "two_level", "--topology-param", "gpus_per_node=abc", *R], r"gpus_per_node: Input should be a valid integer \(got 'abc'\)"),
    (["--topology", "torus2d", "--topology-param", "rows='2'", *R], r"rows: Input should be a valid integer \(got '2'\)"),
    (["--topology-param", "link_overrides=5", *R], r"link_overrides: Input should be a valid list \(got 5\)"),
    (["--topology-param", "link_overrides=[{between: [h0]}]", *R], r"link_overrides\[0\]\.between: expected two node names"),
    (["--topology-param", "x=[&a [1, 1], *a, *a]", *R], r"topology 'switch': unknown parameter 'x'"),
    (["--topology-param", "k" * 500 + "=1", *R], r"--topology-param: the name 'kkkk.*\.\.\. is longer than 100 characters"),
    (["--topology", "mesh", *R], r"unknown topology 'mesh'; choose one of"),
    (["--topology", "x" * 500, *R], r"'--topology': 'xxxx.*\.\.\. is not a topology name"),
    # algorithm parameters
    (["--param", "shards=true", "-a", "parameter_server", "-p", "8", *B], r"shards must be an integer >= 1 and at most 65,536, got True"),
    (["--param", "chunks=abc", *R], r"chunks must be an integer >= 1 and at most 1,000,000, got 'abc'"),
    (["--param", "gpus_per_node=abc", "-a", "hierarchical", "-p", "8", *B], r"gpus_per_node must be an integer >= 1 and at most 1,000,000,000, got 'abc'"),
    (["-a", "b" * 500, "-p", "8", *B], r"unknown collective 'bbbb.*\.\.\.'; choose one of"),
    # sizes, bandwidths, latencies, workers
    (["-a", "ring", "-p", "8", "--bytes", "nan", "--bandwidth", "1Gbit/s"], r"--bytes: cannot read 'nan'"),
    (["-a", "ring", "-p", "8", "--bytes", "inf", "--bandwidth", "1Gbit/s"], r"--bytes: cannot read 'inf'"),
    (["-a", "ring", "-p", "8", "--bytes", "1e400", "--bandwidth", "1Gbit/s"], r"--bytes: cannot read '1e400'"),
    (["-a", "ring", "-p", "8", "--bytes", "-1", "--bandwidth", "1Gbit/s"], r"--bytes: must be >= 0 bytes, got '-1'"),
    (["-a", "ring", "-p", "8", "--bytes", "lots", "--bandwidth", "1Gbit/s"], r"--bytes: cannot read 'lots'"),
    (["-a", "ring", "-p", "8", "--bytes", "1MB", "--bandwidth", "1e-320B/s"], r"--bandwidth: '1e-320B/s' is .* bytes/s; expected 1 byte/s to 1e\+15 bytes/s"),
    (["-a", "ring", "-p", "8", "--bytes", "1MB", "--bandwidth", "-1Gbit/s"], r"--bandwidth: '-1Gbit/s' is -1\.25e\+08 bytes/s; expected 1 byte/s"),
    (["-a", "ring", "-p", "8", "--bytes", "1MB", "--bandwidth", "inf"], r"--bandwidth: cannot read 'inf'"),
    (["-a", "ring", "-p", "8", "--bytes", "1MB", "--bandwidth", "fast"], r"--bandwidth: cannot read 'fast'"),
    (["-a", "ring", "-p", "8", "--bytes", "1MB", "--bandwidth", "1e30B/s"], r"--bandwidth: '1e30B/s' is 1e\+30 bytes/s; expected 1 byte/s to 1e\+15"),
    ([*R, "--latency", "3601s"], r"--latency: '3601s' is 3601 s; expected 0 to 3600 s"),
    ([*R, "--latency", "1e308s"], r"--latency: '1e308s' is 1e\+308 s; expected 0 to 3600 s"),
    ([*R, "--latency", "-1us"], r"--latency: '-1us' is -1e-06 s; expected 0 to 3600 s"),
    ([*R, "--latency", "nan"], r"--latency: cannot read 'nan'"),
    ([*R, "--latency", "5parsecs"], r"--latency: cannot read '5parsecs'"),
    (["-a", "ring", "-p", "0", *B], r"--workers: must be >= 1, got 0"),
    (["-a", "ring", "-p", "1e9", *B], r"'--workers' / '-p': '1e9' is not a valid integer"),
]


def _collective(args: list[str]):
    return CliRunner().invoke(cli, ["collective", *args])


@pytest.mark.parametrize("args, pattern", COMMANDS, ids=range(len(COMMANDS)))
def test_bad_collective_command_lines(args, pattern):
    """Sizes beyond the machine (workers, fat tree k, rings of a billion hosts, link
    simulations of hours), malformed KEY=VALUE options, wrong parameter types, non-finite
    or absurd sizes, bandwidths and latencies: exit 2, one line naming the option or
    parameter and, for sizes, the estimate and the alternative; nothing on stdout."""
    t0 = time.perf_counter()
    one_line_error(_collective(args), pattern, t0, LIMIT_S, stdout_empty=True)


@pytest.mark.parametrize("args", [
    ["-a", "ring", "-p", "1000000000", "--fidelity", "analytic", *B],
    ["-a", "hierarchical", "--param", "gpus_per_node=8", "-p", "1000000000", "--fidelity",
     "analytic", *B],
    ["-a", "auto", "-p", "65536", *B, "--topology", "torus2d"],
    ["-a", "ring", "-p", "65536", *B, "--topology", "fat_tree", "--topology-param", "k=64",
     "--topology-param", "link_overrides=[{between: [h0, e0_0], bandwidth: 1Gbit/s}]"],
    ["-a", "ring", "-p", "4", *B, "--topology", "fat_tree", "--topology-param", "k=150",
     "--topology-param", "link_overrides=[{between: [h0, e0_0], bandwidth: 1Gbit/s}]",
     "--fidelity", "link"],
    ["-a", "ring", "-p", "64", *B, "--param", "chunks=1000000"],
    ["-a", "ring", "-p", "64", "--bytes", "0", "--bandwidth", "1B/s", "--latency", "3600s"],
])
def test_large_requests_that_fit_answer_in_strict_json(args):
    """Above 65,536 workers closed forms answer at once (a billion ranks on switch); the
    largest simulated sizes answer in seconds; --json is always strict JSON."""
    t0 = time.perf_counter()
    result = _collective([*args, "--json", "--explain"])
    assert time.perf_counter() - t0 < LIMIT_S
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert math.isfinite(out["simulated_s"]) and out["workers"] == int(args[args.index("-p") + 1])
