"""Units: strings with units -> SI base units, once, with clear errors."""

import math

import pytest

from rsdgc_sim.errors import UnitError
from rsdgc_sim.units import (
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
