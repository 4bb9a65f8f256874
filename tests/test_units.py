"""Units: strings with units -> SI base units, once, with clear errors."""

import math

import pytest

from rsdgc_sim.errors import UnitError
from rsdgc_sim.units import (
    bandwidth_text,
    duration_text,
    format_bandwidth,
    format_duration,
    format_size,
    parse_bandwidth,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10Gbit/s", 1.25e9),
        ("1.25GB/s", 1.25e9),
        ("100Mbit/s", 1.25e7),
        ("1Gbit/s", 1.25e8),
        ("800Mbps", 1e8),
        ("1GiB/s", 2.0**30),
        ("400 Mbit/s", 5e7),
        ("8bit/s", 1.0),
        (1e9, 1e9),
        ("125000000", 1.25e8),
    ],
)
def test_bandwidth_to_bytes_per_second(text, expected):
    """Bandwidths become bytes/s: bits are divided by 8, decimal prefixes are powers of 1000."""
    assert parse_bandwidth(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("5us", 5e-6), ("1.5ms", 1.5e-3), ("2s", 2.0), ("100ns", 1e-7), ("2min", 120.0), (0.25, 0.25), ("3e-6", 3e-6)],
)
def test_duration_to_seconds(text, expected):
    """Durations become seconds, exactly as the decimal literal would be written in seconds."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("25MiB", 26214400.0), ("100MB", 1e8), ("512KiB", 524288.0), ("8kbit", 1000.0), ("1GiB", 2.0**30), (42, 42.0), ("1B", 1.0)],
)
def test_size_to_bytes(text, expected):
    """Sizes become bytes; binary prefixes are powers of 1024."""
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "parse, bad",
    [
        (parse_bandwidth, "10Gfoo/s"),
        (parse_bandwidth, "10GB"),  # a size is not a bandwidth
        (parse_bandwidth, "fast"),
        (parse_duration, "5 parsecs"),
        (parse_duration, "5MB"),
        (parse_size, "25MiB/s"),
        (parse_size, None),
        (parse_size, True),
        (parse_bandwidth, "nan"),
        (parse_duration, float("inf")),
    ],
)
def test_bad_unit_names_field_and_forms(parse, bad):
    """A bad unit raises UnitError with the field name and the accepted forms."""
    with pytest.raises(UnitError, match=r"^cluster\.x: cannot read .* expected .*e\.g\."):
        parse(bad, "cluster.x")


def test_formatting_round_trips_common_values():
    """The short human forms used in tables read back to the same value."""
    assert format_bandwidth(1.25e9) == "10Gbit/s"
    assert parse_bandwidth(format_bandwidth(1.25e8)) == 1.25e8
    assert format_size(26214400) == "25MiB"
    assert format_duration(0.0123) == "12.3ms"
    assert math.isclose(parse_duration(format_duration(5e-6)), 5e-6)


# --- a bandwidth or a latency a user writes carries its unit ---------------------------

@pytest.mark.parametrize("parse, value, pattern", [
    (parse_bandwidth, 10, r"^cluster\.x: 10 has no unit; write the bandwidth with one, e\.g\. "
                          r"10Gbit/s or 10GB/s$"),
    (parse_bandwidth, "1e9", r"'1e9' has no unit; .* 1e9Gbit/s or 1e9GB/s$"),
    (parse_duration, 5, r"^cluster\.x: 5 has no unit; write the duration with one, e\.g\. "
                        r"5us or 5ms$"),
    (parse_duration, 0, r"0 has no unit; .* 0us or 0ms$"),
    (parse_duration, float("inf"), r"cannot read inf"),
])
def test_a_bare_number_is_refused_where_a_unit_is_required(parse, value, pattern):
    """With unit_required a plain number (or a numeric string) is a UnitError that writes
    the number with units (`5us` / `5ms`, `10Gbit/s`); a non-finite one is unreadable."""
    with pytest.raises(UnitError, match=pattern):
        parse(value, "cluster.x", unit_required=True)
    if math.isfinite(float(value)):  # from Python, without the flag: SI units, as before
        assert parse(value) == float(value)


@pytest.mark.parametrize("x", [1.25e9, 1e-320, 0.1 + 0.2, 123456789.123456789, 0.0])
def test_unit_texts_read_back_exactly(x):
    """bandwidth_text / duration_text write an SI value with its unit, read back exactly
    (a validated scenario's grid, validated again per sweep variant)."""
    assert parse_bandwidth(bandwidth_text(x), unit_required=True) == x
    assert parse_duration(duration_text(x), unit_required=True) == x


def _one_line(args, pattern):
    import time

    from click.testing import CliRunner

    from rsdgc_sim.cli import cli
    from tests.helpers import one_line_error

    t0 = time.perf_counter()
    one_line_error(CliRunner().invoke(cli, args), pattern, t0, limit_s=30)


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d["cluster"].update(latency=5),
     r"cluster\.latency\[0\]: 5 has no unit; write the duration with one, e\.g\. 5us or 5ms$"),
    (lambda d: d["cluster"].update(latency=[0, "5us"]), r"cluster\.latency\[0\]: 0 has no unit"),
    (lambda d: d["cluster"].update(bandwidth=10),
     r"cluster\.bandwidth\[0\]: 10 has no unit; .* 10Gbit/s or 10GB/s$"),
    (lambda d: d["cluster"].update(bandwidth="1250000000"), r"'1250000000' has no unit"),
    (lambda d: d["cluster"].update(topology={"name": "two_level", "gpus_per_node": 2,
                                             "intra_latency": 1}),
     r"intra_latency: 1 has no unit; .* 1us or 1ms"),
    (lambda d: d["cluster"].update(topology={"name": "switch", "link_overrides": [
        {"between": ["h0", "sw"], "bandwidth": 1e9}]}),
     r"link_overrides\[0\]\.bandwidth: 1000000000\.0 has no unit"),
    (lambda d: d.update(device={"peak_flops": "10TFLOP/s", "memory_bandwidth": 9e11}),
     r"device\.memory_bandwidth: 900000000000\.0 has no unit; .*GB/s"),
    (lambda d: d.update(device={"model": "V100", "op_overhead": 5}),
     r"device\.op_overhead: 5 has no unit; .* 5us or 5ms"),
])
def test_scenarios_refuse_bare_bandwidths_and_latencies(change, pattern, tmp_path):
    """`latency: 5` was read as 5 s: every bandwidth and duration of a scenario (the
    cluster's, a topology's parameters and link overrides, a device model's) must carry a
    unit; a bare number is one line, exit 2, with the number written with units."""
    import copy

    import yaml

    from tests.conftest import TINY

    data = copy.deepcopy(TINY)
    change(data)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    _one_line(["run", str(path), "--out", str(tmp_path / "o")], pattern)


def test_topology_files_refuse_bare_numbers(tmp_path):
    """A topology file's link bandwidth or latency without a unit is refused, naming it."""
    from rsdgc_sim.errors import ConfigError
    from rsdgc_sim.sim.topology import build_topology

    path = tmp_path / "lab.yaml"
    path.write_text("hosts: [a, b]\nswitches: [s]\nlinks:\n  - {between: [a, s], latency: 2}\n"
                    "  - {between: [b, s]}\n")
    with pytest.raises(ConfigError, match=r"links\[0\]\.latency: 2 has no unit"):
        build_topology(str(path), 2, 1.25e9, 5e-6)


@pytest.mark.parametrize("args, pattern", [
    (["collective", "-a", "ring", "-p", "4", "--bytes", "1MB", "--bandwidth", "10"],
     r"--bandwidth: '10' has no unit; .* 10Gbit/s or 10GB/s$"),
    (["collective", "-a", "ring", "-p", "4", "--bytes", "1MB", "--bandwidth", "10Gbit/s",
      "--latency", "5"], r"--latency: '5' has no unit; .* 5us or 5ms$"),
    (["calibrate", "--bandwidth", "100"], r"--bandwidth: '100' has no unit"),
])
def test_options_refuse_bare_bandwidths_and_latencies(args, pattern):
    """The command-line bandwidths and latencies need their unit too."""
    _one_line(args, pattern)


def test_breakeven_range_needs_the_unit_of_its_path(tmp_path):
    """`breakeven --vary cluster.bandwidth --lo 5` is refused (5 what?); a number stays a
    number for a path without a unit (workers)."""
    from pathlib import Path

    scen = str(Path(__file__).resolve().parent.parent / "scenarios" / "teaching" /
               "sparse_vs_dense.yaml")
    _one_line(["breakeven", scen, "--vary", "cluster.bandwidth", "--lo", "5"],
              r"--lo: '5' has no unit; .* 5Gbit/s or 5GB/s$")
    _one_line(["breakeven", scen, "--vary", "cluster.latency", "--hi", "1"],
              r"--hi: '1' has no unit; .* 1us or 1ms$")
