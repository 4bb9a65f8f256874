"""The results table printed by `rsdgc-sim run` (rich).

By default it fits 100 terminal columns: two-line headers with the unit in the header, no
vertical rules, the compressor label wrapped when long, and the columns a reader needs to
compare compressors. ``wide=True`` adds the rest. Every column is defined in
:data:`COLUMNS` (also shown by ``rsdgc-sim run --help`` and in the README).

When rows carry ranges (``iteration_s_low``/``_high``, ``speedup_vs_dense_low``/``_high``:
the profile's interquartile spread carried through the simulator) and one of them is wider
than a point, a narrow ``±%`` column follows the iteration time and the speedup: the larger
distance from the value to either end of its range, in percent of the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from ..units import format_bandwidth, format_size

Row = Mapping[str, Any]


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.1f}"


def _sig3(x: float | None) -> str:
    """Three significant figures, without exponent for everyday sizes."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{round(x, -len(str(int(x))) + 3):.0f}"
    return f"{x:#.3g}"


def half_range(r: Row, key: str) -> float:
    """The larger distance from ``r[key]`` to either end of its range (``<key>_low``,
    ``<key>_high``) relative to the value: 0 without a range (a row of an older version
    has none), ``inf`` for an open end (``<key>_high`` None)."""
    v, lo = r.get(key), r.get(f"{key}_low")
    if v is None or lo is None or f"{key}_high" not in r:
        return 0.0
    hi = r[f"{key}_high"]
    if hi is None:
        return math.inf
    if v == 0:
        return 0.0 if lo == hi == 0 else math.inf
    return max(v - lo, hi - v) / abs(v)


def _pm(key: str) -> Callable[[Row], str]:
    """``3`` (percent), ``<1``, ``0`` (no range), ``1k+`` (1000 % or more) or ``inf`` (an
    open end): at most 3 characters."""
    def cell(r: Row) -> str:
        rel = half_range(r, key)
        if rel == 0:
            return "0"
        pct = rel * 100
        return ("inf" if math.isinf(pct) else "1k+" if pct >= 999.5 else "<1" if pct < 0.5
                else f"{pct:.0f}")
    return cell


def _sent(key: str) -> Callable[[Row], str]:
    """Bytes on the wire: nothing is sent by a single worker."""
    return lambda r: "-" if r["workers"] == 1 else format_size(r[key])


@dataclass(frozen=True)
class Column:
    header: str
    help: str
    cell: Callable[[Row], str]
    wide_only: bool = False
    justify: str = "right"
    #: shown only when some row's range is wider than a point (:func:`has_ranges`)
    ranges_only: bool = False


COLUMNS: list[Column] = [
    Column("compressor", "the compressor's label in the scenario", lambda r: str(r["compressor"]),
           justify="left"),
    Column("workers", "data-parallel workers", lambda r: str(r["workers"])),
    Column("link", "host link bandwidth (bits/s)",
           lambda r: format_bandwidth(r["bandwidth_bytes_per_s"])),
    Column("latency", "host-to-host latency", lambda r: f"{r['latency_s'] * 1e6:g}us",
           wide_only=True),
    Column("iter\nms", "simulated iteration time of the slowest worker",
           lambda r: _ms(r["iteration_s"])),
    Column("±\n%", "iteration time's range (profile spread): larger distance to an end, % of it",
           _pm("iteration_s"), ranges_only=True),
    Column("compute\nms", "forward + backward + optimizer of that worker",
           lambda r: _ms(r["compute_s"]), wide_only=True),
    Column("compress\nms", "its compression + decompression, incl. summing the p payloads", lambda r: _ms(r["compression_s"])),
    Column("comm\nms", "sum of the collectives' durations", lambda r: _ms(r["communication_s"]),
           wide_only=True),
    Column("exposed\nms", "iteration minus the same with zero-time collectives", lambda r: _ms(r["exposed_communication_s"])),
    Column("payload\n/worker", "what a worker contributes per iteration (values + indices)", _sent("bytes_sent_per_worker")),
    Column("NIC tx\n/worker", "what leaves a worker's NIC per iteration (all-gathers forward)", _sent("bytes_transmitted_per_worker")),
    Column("ratio", "dense gradient bytes / payload bytes",
           lambda r: "-" if not r["compression_ratio"] else f"{r['compression_ratio']:.1f}x",
           wide_only=True),
    Column("vs\ndense", "speedup over dense training at the same point",
           lambda r: "-" if r["speedup_vs_dense"] is None else f"{r['speedup_vs_dense']:.2f}x"),
    Column("±\n%", "speedup's range (both at the profile's quartiles): larger distance to an end, %",
           _pm("speedup_vs_dense"), ranges_only=True),
    Column("scaling", "dense 1-worker iteration / this one (weak scaling)",
           lambda r: "-" if r["scaling_efficiency"] is None
           else f"{r['scaling_efficiency'] * 100:.0f}%", wide_only=True),
    Column("samples\n/s", "workers x batch / iteration time",
           lambda r: _sig3(r["samples_per_s"])),
]


def columns_help(wide: bool = True) -> str:
    """One line per column: its header and what it means."""
    return "\n".join(f"{c.header.replace(chr(10), ' ')}: {c.help}" for c in COLUMNS
                     if wide or not c.wide_only)


def has_ranges(runs: Iterable[Row]) -> bool:
    """Whether some row's iteration time or speedup has a range wider than a point."""
    return any(half_range(r, k) != 0 for r in runs for k in ("iteration_s", "speedup_vs_dense"))


def results_table(runs: Iterable[Row], title: str = "", wide: bool = False) -> Table:
    """One row per run; the default set fits 100 columns, ``wide`` shows every column;
    the ``±%`` columns appear when some row has a range (:func:`has_ranges`)."""
    runs = list(runs)
    ranges = has_ranges(runs)
    cols = [c for c in COLUMNS if (wide or not c.wide_only) and (ranges or not c.ranges_only)]
    t = Table(title=title or None, header_style="bold", box=box.SIMPLE_HEAD,
              padding=0, show_edge=False, title_justify="left")
    for c in cols:
        if c.header == "compressor":
            t.add_column(c.header, justify="left", overflow="fold", min_width=18, max_width=18)
        else:
            t.add_column(c.header, justify=c.justify, no_wrap=True)
    for r in runs:
        t.add_row(*(c.cell(r) for c in cols))
    return t
