"""Two results files side by side (``rsdgc-sim compare A B``): rows matched by point
(compressor + every axis value), the differences in iteration time and in its breakdown.

A row's point is its ``point`` (dotted path -> value, this version's results) or, for the
axes such a file has no ``point`` for, the flat keys ``workers``, ``bandwidth_bytes_per_s``,
``latency_s`` and ``topology``. Rows found in one file only are listed apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .plots.axes import FLAT_AXES, axis_of
from .plots.figure import short_value

#: flat keys that identify a point when a row has no ``point``
FLAT_POINT = ("workers", "bandwidth_bytes_per_s", "latency_s", "topology")
#: the breakdown compared: (column, row field or callable)
PARTS = ("compute_s", "compression_s", "exposed_communication_s", "hidden_communication_s")
#: a relative change in iteration time above this is highlighted (red slower, green faster)
HIGHLIGHT = 0.01
#: the point column's width: a longer point wraps at a space
POINT_WIDTH = 28


def hidden(row: Mapping[str, Any]) -> float:
    """Communication hidden behind compute: communication - exposed communication."""
    return max(0.0, row["communication_s"] - row["exposed_communication_s"])


def part(row: Mapping[str, Any], name: str) -> float:
    return hidden(row) if name == "hidden_communication_s" else row[name]


def point_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every value that places the row: its ``point``, completed by the flat keys."""
    out = dict(row.get("point") or {})
    for key in FLAT_POINT:
        if key in row and FLAT_AXES[key] not in out:
            out[FLAT_AXES[key]] = row[key]
    return out


def match_key(row: Mapping[str, Any]) -> str:
    return json.dumps([row.get("compressor"), sorted(point_of(row).items())], sort_keys=True,
                      default=str)


@dataclass
class Comparison:
    """Rows of A and B matched by point; those in one file only."""

    matched: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = field(default_factory=list)
    only_a: list[Mapping[str, Any]] = field(default_factory=list)
    only_b: list[Mapping[str, Any]] = field(default_factory=list)

    def varying(self) -> list[str]:
        """The point paths whose value differs between rows (what a row is labelled by)."""
        rows = [a for a, _ in self.matched] + self.only_a + self.only_b
        seen: dict[str, set] = {}
        for r in rows:
            for k, v in point_of(r).items():
                seen.setdefault(k, set()).add(json.dumps(v, default=str))
        return [k for k, v in seen.items() if len(v) > 1]


def compare_runs(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> Comparison:
    """Match the rows of A and B by compressor and point (A's order)."""
    index_b: dict[str, Mapping[str, Any]] = {}
    for r in b:
        index_b.setdefault(match_key(r), r)
    out = Comparison()
    used: set[str] = set()
    for r in a:
        k = match_key(r)
        if k in index_b and k not in used:
            out.matched.append((r, index_b[k]))
            used.add(k)
        else:
            out.only_a.append(r)
    out.only_b = [r for r in b if match_key(r) not in used]
    return out


def point_label(row: Mapping[str, Any], paths: Sequence[str]) -> str:
    pt = point_of(row)
    return ", ".join(short_value(axis_of(p, [pt[p]]), pt[p]) for p in paths if p in pt) or "-"


def _ms(x: float) -> str:
    return f"{x * 1e3:.4g}"


def _delta(a: float, b: float) -> str:
    d = (b - a) * 1e3
    return "0" if d == 0 else f"{d:+.3g}"


def compare_table(cmp: Comparison, name_a: str = "A", name_b: str = "B", width: int = 100):
    """A rich table: point, compressor, iteration in A and B (ms), change (%), and the
    change of each part of the breakdown (ms); rows whose iteration changed by more than
    :data:`HIGHLIGHT` in red (slower) or green (faster), the part that moved most in bold.
    At most ``width`` columns wide with every compressor label whole
    (:func:`~rsdgc_sim.report.table.fit_labels`)."""
    from .table import add_label_column, fit_labels, new_table  # lazy: rich

    paths = cmp.varying()

    def build(shown: Mapping[str, str]):
        t = new_table(f"A = {name_a}, B = {name_b}\niteration (ms) in A and B, and B - A of "
                      f"its parts (ms)", padding=(0, 1, 0, 0))
        # the point wraps at a space (after a comma), never in a value
        t.add_column("point", overflow="fold", max_width=POINT_WIDTH)
        add_label_column(t)
        for col in ("A", "B", "B/A", "compute", "compress", "exposed", "hidden"):
            t.add_column(col, justify="right", no_wrap=True)
        for ra, rb in cmp.matched:
            ia, ib = ra["iteration_s"], rb["iteration_s"]
            rel = ib / ia - 1 if ia else 0.0
            style = ("red" if rel > HIGHLIGHT else "green" if rel < -HIGHLIGHT else None)
            deltas = [part(rb, p) - part(ra, p) for p in PARTS]
            big = max(range(len(PARTS)), key=lambda i: abs(deltas[i]))
            cells = [_delta(part(ra, p), part(rb, p)) for p in PARTS]
            if style and deltas[big] != 0:
                cells[big] = f"[bold]{cells[big]}[/bold]"
            t.add_row(point_label(ra, paths), shown[str(ra["compressor"])], _ms(ia), _ms(ib),
                      f"{ib / ia:.3f}" if ia else "-", *cells, style=style)
        return t

    t = fit_labels(build, (str(ra["compressor"]) for ra, _ in cmp.matched), width)
    t.width = width  # the title (two file names) wraps at the full width
    return t


def unmatched_lines(cmp: Comparison, name_a: str = "A", name_b: str = "B") -> list[str]:
    """One line per row found in one file only."""
    paths = cmp.varying()
    out = []
    for rows, name, other in ((cmp.only_a, name_a, name_b), (cmp.only_b, name_b, name_a)):
        for r in rows:
            out.append(f"only in {name}: {r.get('compressor')} at {point_label(r, paths)} "
                       f"(no such point in {other})")
    return out


def compare_files(path_a: str, path_b: str) -> tuple[Comparison, dict, dict]:
    """Load two results.json files (this version's format; another version's is refused
    with its version) and match their rows."""
    from .results import load_results  # lazy: imports pydantic

    a, b = load_results(path_a), load_results(path_b)
    return compare_runs(a["runs"], b["runs"]), a, b


__all__ = ["Comparison", "compare_files", "compare_runs", "compare_table", "unmatched_lines"]
