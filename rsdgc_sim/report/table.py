"""The results table printed by `rsdgc-sim run` (rich)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table

from ..units import format_bandwidth, format_size


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def results_table(runs: Iterable[Mapping[str, Any]], title: str = "") -> Table:
    """One row per run. ``sent/worker`` is the payload a worker contributes per iteration
    (what compression ratios are about); ``tx/worker`` what leaves its NIC (a ring
    all-gather forwards the other p - 1 payloads too, a ring allreduce sends 2(p-1)/p of
    the gradient)."""
    t = Table(title=title or None, header_style="bold")
    for name, justify in [
        ("compressor", "left"), ("workers", "right"), ("bandwidth", "right"),
        ("iter ms", "right"), ("compute ms", "right"), ("compress ms", "right"),
        ("comm ms", "right"), ("exposed ms", "right"), ("sent/worker", "right"), ("tx/worker", "right"),
        ("ratio", "right"), ("vs dense", "right"), ("scaling", "right"), ("samples/s", "right"),
    ]:
        t.add_column(name, justify=justify)
    for r in runs:
        t.add_row(
            str(r["compressor"]),
            str(r["workers"]),
            format_bandwidth(r["bandwidth_bytes_per_s"]),
            _ms(r["iteration_s"]),
            _ms(r["compute_s"]),
            _ms(r["compression_s"]),
            _ms(r["communication_s"]),
            _ms(r["exposed_communication_s"]),
            format_size(r["bytes_sent_per_worker"]),
            format_size(r["bytes_transmitted_per_worker"]),
            _num(r["compression_ratio"], ".1f") + ("x" if r["compression_ratio"] else ""),
            _num(r["speedup_vs_dense"], ".2f") + "x",
            _num(r["scaling_efficiency"] * 100 if r["scaling_efficiency"] is not None else None, ".0f") + "%",
            _num(r["samples_per_s"], ".0f"),
        )
    return t
