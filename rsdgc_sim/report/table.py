"""The results table printed by `rsdgc-sim run` (rich).

By default it fits 100 terminal columns: two-line headers with the unit in the header, no
vertical rules, the compressor label wrapped when long, and the columns a reader needs to
compare compressors. ``wide=True`` adds the rest. Every column is defined in
:data:`COLUMNS` (also shown by ``rsdgc-sim run --help`` and in the README).

When rows carry ranges (``iteration_s_low``/``_high``, ``speedup_vs_dense_low``/``_high``:
the profile's interquartile spread carried through the simulator) and one of them is wider
than a point, a narrow ``±%`` column follows the iteration time and the speedup: the larger
distance from the value to either end of its range, in percent of the value.

Every table a command prints (this one, and those of ``tta``, ``train``, ``compare``,
``breakeven``, ``emulate``, ``profile`` and ``list``) fits :data:`TABLE_WIDTH` columns
with every compressor label whole, in one way: the table is built with the full labels in a
column that never wraps them at that width; where it would be wider than
:data:`TABLE_WIDTH` (:func:`natural_width`), :func:`fit_labels` builds it again with the
labels too long for the room left shown short (:func:`short_label`: ``topk .001`` for
``topk(density=0.001)``), and a legend under the table gives each short label's full one
(:class:`LegendTable`). In a terminal narrower than :data:`TABLE_WIDTH` a label wraps at a
space (after a comma), never in a token.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from ..units import format_bandwidth, format_size

Row = Mapping[str, Any]

#: the terminal columns every table fits (``run --wide`` excepted)
TABLE_WIDTH = 100
#: the fewest characters a label is shortened to
MIN_LABEL = 6


class LegendTable(Table):
    """A rich :class:`~rich.table.Table` followed by its legend: one line ``SHORT = FULL``
    per compressor label shown short (set by :func:`fit_labels`; empty: no legend)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.legend: dict[str, str] = {}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from super().__rich_console__(console, options)
        for short, full in self.legend.items():
            yield Text(f"{short} = {full}")


def new_table(title: str | None = None, **kwargs: Any) -> LegendTable:
    """The tables' common look: bold headers, a rule under them, no vertical rules or
    edges, one space between columns, the title on the left (``kwargs`` override)."""
    opts: dict[str, Any] = {"header_style": "bold", "box": box.SIMPLE_HEAD, "padding": 0,
                            "show_edge": False, "title_justify": "left",
                            "caption_justify": "left", **kwargs}
    return LegendTable(title=title or None, **opts)


def add_label_column(t: Table, header: str = "compressor", **kwargs: Any) -> None:
    """The compressor label column: left, never cut; a label wraps (at a space) only in a
    terminal too narrow for the table."""
    t.add_column(header, justify="left", overflow="fold", **kwargs)


def natural_width(table: Table) -> int:
    """Terminal columns ``table`` takes when nothing in it is wrapped."""
    return Console(width=10_000, file=io.StringIO()).measure(table).maximum


def _compact(value: str) -> str:
    """``.001`` for ``0.001``; anything else as it is."""
    return re.sub(r"^(-?)0\.(?=\d)", r"\1.", value.strip())


def short_label(label: str) -> str:
    """``name v1 v2``: the compressor's name and its parameters' values for a label of the
    form ``name(k1=v1, k2=v2)`` (``topk .001`` for ``topk(density=0.001)``, ``powersgd 4``
    for ``powersgd(rank=4)``); any other label as it is."""
    m = re.fullmatch(r"([\w.-]+)\((.*)\)", label.strip(), re.S)
    if not m:
        return label
    values = [p.partition("=")[2] if "=" in p else p for p in re.split(r",\s*(?=\w+=)", m[2])]
    return " ".join([m[1], *(_compact(v) for v in values if v.strip())])


def shorten_labels(labels: Iterable[str], width: int) -> dict[str, str]:
    """label -> what a table shows for it: the label itself when it has at most ``width``
    characters, else its :func:`short_label` when that fits and is no other label's, else
    its first word cut to fit and ``#N`` (N counting these), all distinct."""
    labels = list(dict.fromkeys(labels))
    taken = {x for x in labels if len(x) <= width}
    out: dict[str, str] = {}
    n = 0
    for label in labels:
        if len(label) <= width:
            out[label] = label
            continue
        short = short_label(label)
        while len(short) > width or short in taken:
            n += 1
            tag = f"#{n}"
            word = re.match(r"[^\s(,=]*", label)[0]  # type: ignore[index]
            short = word[:max(width - len(tag), 1)] + tag
        taken.add(short)
        out[label] = short
    return out


def fit_labels(build: Callable[[Mapping[str, str]], LegendTable], labels: Iterable[str],
               limit: int | None = TABLE_WIDTH) -> LegendTable:
    """``build(shown)`` (``shown``: label -> the text its cell shows) with every label in
    full when that table is at most ``limit`` columns wide (None: no limit), else with the
    labels too long for the room left shown short (:func:`shorten_labels`) and listed in
    the table's legend."""
    labels = list(dict.fromkeys(str(x) for x in labels))
    t = build({x: x for x in labels})
    over = 0 if limit is None or not labels else natural_width(t) - limit
    if over <= 0:
        return t
    shown = shorten_labels(labels, max(max(map(len, labels)) - over, MIN_LABEL))
    t = build(shown)
    t.legend = {s: x for x, s in shown.items() if s != x}
    return t


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


def results_table(runs: Iterable[Row], title: str = "", wide: bool = False) -> LegendTable:
    """One row per run; the default set fits :data:`TABLE_WIDTH` columns with every label
    whole (:func:`fit_labels`), ``wide`` shows every column; the ``±%`` columns appear when
    some row has a range (:func:`has_ranges`)."""
    runs = list(runs)
    ranges = has_ranges(runs)
    cols = [c for c in COLUMNS if (wide or not c.wide_only) and (ranges or not c.ranges_only)]

    def build(shown: Mapping[str, str]) -> LegendTable:
        t = new_table(title)
        for c in cols:
            if c.header == "compressor":
                add_label_column(t, c.header, min_width=18)
            else:
                t.add_column(c.header, justify=c.justify, no_wrap=True)
        for r in runs:
            t.add_row(*(shown[str(r["compressor"])] if c.header == "compressor" else c.cell(r)
                        for c in cols))
        return t

    return fit_labels(build, (str(r["compressor"]) for r in runs), None if wide else TABLE_WIDTH)
