"""``rsdgc-sim compare``: two results.json side by side."""

from __future__ import annotations

import click

from ..report.compare import compare_files, compare_table, unmatched_lines
from .common import SafePath


@click.command()
@click.argument("a", type=SafePath(dir_okay=False))
@click.argument("b", type=SafePath(dir_okay=False))
def compare(a, b):
    """Two results.json side by side, matched by point: iteration time and its breakdown
    (compute, compression, exposed and hidden communication), changes highlighted."""
    from rich.console import Console  # lazy: rich

    cmp, _da, _db = compare_files(a, b)
    out = Console(width=100, force_terminal=None)
    if cmp.matched:
        out.print(compare_table(cmp, a, b))
    else:
        out.print("no point in common")
    for line in unmatched_lines(cmp, "A", "B"):
        out.print(line, markup=False)
