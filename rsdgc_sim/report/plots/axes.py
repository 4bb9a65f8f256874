"""The axes of a study's results: what was swept, each row's value on it, and how to draw it.

``results.json`` names its swept axes in ``"axes"`` (``{dotted scenario path: [values]}``)
and each row's ``"point"``; older files have neither, and their axes are read off the flat
row keys (``workers``, ``bandwidth_bytes_per_s``, ``latency_s``, ``topology``): a key with
more than one value is an axis (``collective`` is not one: it names the algorithms a run
used, which differ between compressors). Both keep plotting.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError

#: flat row key -> the scenario path it comes from (old results files: no ``axes``)
FLAT_AXES = {
    "workers": "cluster.workers",
    "bandwidth_bytes_per_s": "cluster.bandwidth",
    "latency_s": "cluster.latency",
    "topology": "cluster.topology.name",
}
#: path -> flat key, and short names accepted by ``--x``
_PATH_TO_FLAT = {v: k for k, v in FLAT_AXES.items()}
_ALIASES = {"workers": "cluster.workers", "bandwidth": "cluster.bandwidth",
            "latency": "cluster.latency", "topology": "cluster.topology.name",
            "collective": "cluster.collective"}


@dataclass(frozen=True)
class Axis:
    """How one scenario path is drawn: label with its unit, the factor from the stored SI
    value to the drawn one, and whether a log scale reads it best."""

    path: str
    label: str
    scale: float = 1.0
    log: bool = False
    numeric: bool = True

    def show(self, value: Any) -> Any:
        return value * self.scale if self.numeric else value

    def tick(self, value: Any) -> str:
        """A value as a tick or panel label, with its unit (a flag as on/off, a mapping as
        ``fat_tree(k=8)``, a list as ``[2, 1]``: never a Python repr)."""
        if not self.numeric:
            return value_words(value)
        from ...units import format_bandwidth, format_duration  # lazy: imports pydantic

        if self.path == "cluster.bandwidth":
            return format_bandwidth(value)
        if self.path == "cluster.latency":
            return format_duration(value)
        return f"{value:g}"

    def value_text(self, value: Any, digits: int = 4) -> str:
        """A (break-even) value in the axis's drawn unit, ``digits`` significant:
        ``25.76 Gbit/s``, ``74 workers``, ``0.0625``."""
        if not self.numeric:
            return value_words(value)
        if self.path == "cluster.workers":
            return worker_text(value)
        unit = self.label.rsplit("(", 1)[1].rstrip(")") if "(" in self.label else ""
        return f"{self.show(value):.{digits}g} {unit}".strip()


def worker_text(n: float) -> str:
    """A worker count: ``74 workers``; one between two whole counts (interpolated where a
    curve crosses 1) as the integers around it, ``34-35 workers``, since a fraction of a
    worker does not exist."""
    if float(n).is_integer():
        return f"{int(n)} worker{'' if n == 1 else 's'}"
    return f"{math.floor(n)}-{math.ceil(n)} workers"


def value_words(value: Any, top: bool = True) -> str:
    """A swept value as a reader writes it, never a Python repr: a flag ``on``/``off``
    (``true``/``false`` inside a mapping), a mapping with a name ``fat_tree(k=8)``, other
    mappings ``(k=8)``, a list ``[2, 1, 1]``, a number ``0.01``, None ``none``."""
    if isinstance(value, bool):
        return ("on" if value else "off") if top else ("true" if value else "false")
    if value is None:
        return "none"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        name = value.get("name")
        inner = ", ".join(f"{k}={value_words(v, top=False)}" for k, v in value.items()
                          if not (k == "name" and isinstance(name, str)))
        if isinstance(name, str):
            return f"{name}({inner})" if inner else name
        return f"({inner})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_words(v, top=False) for v in value) + "]"
    return str(value)


def axis_of(path: str, values: Sequence[Any]) -> Axis:
    """Label, unit and scale of ``path`` given the values it takes."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    positive = numeric and all(v > 0 for v in values)
    wide = positive and max(values) / min(values) >= 8
    if path == "cluster.workers":
        return Axis(path, "workers", log=wide)
    if path == "cluster.bandwidth":
        return Axis(path, "host link bandwidth (Gbit/s)", scale=8e-9, log=wide)
    if path == "cluster.latency":
        return Axis(path, "latency (µs)", scale=1e6, log=wide)
    return Axis(path, path, log=wide, numeric=numeric)


def resolve_path(name: str) -> str:
    """``--x`` as given (a dotted path, a flat key or a short name) -> the dotted path."""
    return _ALIASES.get(name, FLAT_AXES.get(name, name))


def row_value(row: Mapping[str, Any], path: str) -> Any:
    """The row's value on ``path``: from its ``point``, else from the flat key."""
    point = row.get("point")
    if isinstance(point, Mapping) and path in point:
        v = point[path]
        return tuple(v) if isinstance(v, list) else v
    flat = _PATH_TO_FLAT.get(path)
    if flat is not None and flat in row:
        return row[flat]
    raise ConfigError(f"run has no value for {path!r}")


def study_axes(data: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The swept axes (more than one value), in the file's order: ``data["axes"]`` when
    present, else read off the flat keys of the rows."""
    axes = data.get("axes")
    runs = data.get("runs") or []
    if isinstance(axes, Mapping):
        out = {}
        for path, values in axes.items():
            vals = [tuple(v) if isinstance(v, list) else v for v in values]
            if len(set(map(repr, vals))) > 1:
                out[str(path)] = vals
        return out
    out = {}
    for key, path in FLAT_AXES.items():
        vals = list(dict.fromkeys(r[key] for r in runs if key in r))
        if len(vals) > 1:
            out[path] = sorted(vals) if all(isinstance(v, int | float) for v in vals) else vals
    return out


def pick_x(axes: Mapping[str, list[Any]], want: str | None, numeric_only: bool = False) -> str:
    """The x axis: ``want`` if given (it must be swept), else the swept numeric axis with
    the most values (workers first on ties), else the first swept axis, else workers."""
    if want is not None:
        path = resolve_path(want)
        if path not in axes:
            have = sorted(axes) or ["(none: one point only)"]
            near = difflib.get_close_matches(path, list(axes), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"--x {want}: not a swept axis of these results (swept: "
                              f"{', '.join(have)}){hint}")
        return path
    numeric = [p for p in axes if axis_of(p, axes[p]).numeric]
    if numeric:
        order = list(FLAT_AXES.values())
        return max(numeric, key=lambda p: (len(axes[p]), p == "cluster.workers",
                                           -order.index(p) if p in order else -99))
    if axes and not numeric_only:
        return next(iter(axes))
    return "cluster.workers"


def padded_range(lo: float, hi: float, include: Sequence[float] = (), min_span: float = 0.1,
                 floor: float | None = None) -> tuple[float, float]:
    """A y range around [lo, hi] (and ``include``) at least ``min_span`` times its middle
    value high, so that a 2 % difference looks like 2 %, not like a cliff; never below
    ``floor``."""
    lo, hi = min([lo, *include]), max([hi, *include])
    mid = max(abs(lo), abs(hi), 1e-300)
    span = max(hi - lo, min_span * mid)
    pad = 0.08 * span
    c = (lo + hi) / 2
    a, b = c - span / 2 - pad, c + span / 2 + pad
    if floor is not None and a < floor:
        b, a = b + (floor - a), floor
    return a, b


#: a time axis turns logarithmic when its values span more than this factor (below it,
#: a linear axis from 0 reads the parts in proportion)
LOG_RANGE = 100.0


def spans_decades(values: Sequence[float], limit: float = LOG_RANGE) -> bool:
    """Whether the positive ``values`` span more than ``limit`` times (one 14 s bar beside
    50 ms ones): then a linear axis flattens all but the largest, and a log one reads."""
    pos = [v for v in values if is_finite(v) and v > 0]
    return bool(pos) and max(pos) / min(pos) > limit


def is_finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
