"""Slices of a study: its rows at chosen values of some swept axes.

``plot --where PATH=VALUE`` draws one slice (:func:`select`); ``run`` cuts a study with
more axes than one plot can draw into the slices that fit (:func:`plan`), one file each,
named after the values it fixes (:func:`file_stem`: ``speedup--topology=fat_tree-k8--
overlap=on.png``).

A ``--where`` path is a swept axis of the results (results.json ``axes``; a short name such
as ``workers`` or ``bandwidth`` too) or a field inside an axis whose values are mappings
(``cluster.topology.name=fat_tree`` keeps every fat tree). Its value is read as YAML, and
a bandwidth or latency with its unit as the scenario reads it (``10Gbit/s``, ``5us``); it
must equal one of the axis's values (numbers to 1e-9).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ...strict import excerpt
from .axes import FLAT_AXES, axis_of, is_finite, resolve_path, row_value, study_axes, value_words
from .figure import MAX_PANELS, short_value

#: slices `run` draws at most per kind (more: it says so, and `plot --where` draws one)
MAX_SLICES = 12
#: separates a plot's kind from the values of its slice in a file name
SLICE_SEP = "--"
#: the name of a slice's plot file: kind, then key=value parts
SLICE_FILE = re.compile(r"^(?P<kind>[a-z]+)(?:--[A-Za-z0-9_.]+=[A-Za-z0-9_.+-]*)+\.png$")


@dataclass(frozen=True)
class Slice:
    """The rows of results at some values of some axes.

    * ``data``: the results with only those rows, each fixed axis narrowed to its value(s);
    * ``indices``: where those rows are in the whole results (trace.json's process ids);
    * ``where``: axis path -> the values kept (one, or several for a field of a mapping).
    """

    data: dict[str, Any]
    indices: list[int]
    where: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The fixed values in a few words: ``topology fat_tree(k=8), overlap on``."""
        axes = study_axes(self.data) | {p: v for p, v in self.where.items()}
        return ", ".join(" or ".join(short_value(axis_of(p, axes[p]), v) for v in vals)
                         for p, vals in self.where.items())


def parse_where(items: Sequence[str]) -> list[tuple[str, str]]:
    """``["ddp.overlap=true"]`` -> ``[("ddp.overlap", "true")]``: split at the first ``=``;
    the value stays text until the axis it selects is known."""
    out = []
    for text in items:
        path, sep, raw = str(text).partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--where: expected PATH=VALUE (e.g. ddp.overlap=true), got "
                              f"{excerpt(text)}")
        out.append((path.strip(), raw.strip()))
    return out


def select(data: Mapping[str, Any], where: Sequence[tuple[str, Any]] | Mapping[str, Any]
           ) -> Slice:
    """The rows of ``data`` (a results.json) at every ``(path, value)`` of ``where``; a value
    given as text is read as YAML (with units for bandwidth and latency). A path that is no
    swept axis, or a value that is none of its values, raises one ConfigError listing the
    axes or the values."""
    pairs = list(where.items()) if isinstance(where, Mapping) else list(where)
    axes = study_axes(data)
    runs = list(data.get("runs") or [])
    keep = list(range(len(runs)))
    narrowed: dict[str, list[Any]] = {}
    for name, raw in pairs:
        path, sub = _axis_path(name, axes)
        if path in narrowed:
            raise ConfigError(f"--where {name}: {path} is chosen twice")
        try:
            value = _read_value(path if sub is None else name, raw)
        except ConfigError as e:
            raise ConfigError(f"{e} (values of {name}: {values_text(path, axes[path], sub)})"
                              ) from None
        vals = [v for v in axes[path] if _equal(_field(v, sub), value)]
        if not vals:
            raise ConfigError(f"--where {name}={_shown(raw)}: not a value of {name} (its "
                              f"values: {values_text(path, axes[path], sub)})")
        narrowed[path] = vals
        keep = [i for i in keep if any(_equal(row_value(runs[i], path), v) for v in vals)]
    if not keep:
        what = ", ".join(f"{n}={_shown(r)}" for n, r in pairs)
        raise ConfigError(f"--where {what}: no run of these results has all these values")
    new_axes = {p: narrowed.get(p, v) for p, v in axes.items()}
    sliced = {**data, "axes": new_axes, "runs": [runs[i] for i in keep]}
    return Slice(sliced, keep, {p: narrowed[p] for p in axes if p in narrowed})


def values_text(path: str, values: Sequence[Any], sub: str | None = None) -> str:
    """An axis's values as they are typed after ``--where PATH=`` (``1Gbit/s``, ``5us``,
    ``true``, ``{name: fat_tree, k: 8}``)."""
    from ...units import format_bandwidth, format_duration  # lazy: imports pydantic

    out = []
    for v in values:
        v = _field(v, sub)
        if path == "cluster.bandwidth" and is_finite(v):
            out.append(format_bandwidth(v))
        elif path == "cluster.latency" and is_finite(v):
            out.append(format_duration(v))
        else:
            out.append(_yaml_text(v))
    return ", ".join(dict.fromkeys(out))


def file_stem(kind: str, where: Mapping[str, Sequence[Any]]) -> str:
    """The file name (without ``.png``) of ``kind`` drawn for one slice: the kind, then
    ``--key=value`` per fixed axis (the last part of its path; the whole path where two
    axes end alike), the value in letters, digits and ``._+-`` only:
    ``speedup--topology=fat_tree-k8--overlap=on``."""
    last = [p.rsplit(".", 1)[-1] for p in where]
    parts = [kind]
    for p, key in zip(where, last, strict=True):
        key = key if last.count(key) == 1 else p
        text = "+".join(_slug(axis_of(p, list(where[p])), v) for v in where[p])
        parts.append(f"{key}={text}")
    return SLICE_SEP.join(parts)


def is_plot_file(name: str, kinds: Sequence[str]) -> bool:
    """Whether ``name`` is a plot file `run` writes: ``<kind>.png`` or a slice's
    ``<kind>--key=value....png``."""
    if name in {f"{k}.png" for k in kinds}:
        return True
    m = SLICE_FILE.match(name)
    return m is not None and m["kind"] in kinds


def plan(data: Mapping[str, Any], kind: str, x: str | None = None) -> list[dict[str, Any]]:
    """How ``run`` draws ``kind`` of a study too big for one figure: the values to fix, one
    mapping (axis path -> value) per slice. The axes kept in each slice are the x axis
    (two numeric axes for a heat map) and as many others as make at most
    :data:`~.figure.MAX_PANELS` panels, the last swept first (the cluster's workers,
    bandwidth, latency), so that slices go by the sweep's own fields; the rest are fixed.
    Raises ConfigError (the reason) when the slices would be more than :data:`MAX_SLICES`
    or the kind cannot be drawn at all."""
    from .axes import pick_x  # here: pick_x's error names --x

    axes = study_axes(data)
    if kind == "heatmap":
        numeric = sorted((p for p in axes if axis_of(p, axes[p]).numeric),
                         key=lambda p: (-len(axes[p]), list(axes).index(p)))
        if len(numeric) < 2:
            raise ConfigError(f"a heat map needs two swept numeric axes; these results sweep "
                              f"{', '.join(axes) or 'nothing'}")
        drawn = numeric[:2]
        panel_axes: list[str] = []
    else:
        drawn = [pick_x(axes, x)]
        panel_axes, n = [], 1
        for p in reversed([p for p in axes if p not in drawn]):
            if n * len(axes[p]) <= MAX_PANELS:
                panel_axes.append(p)
                n *= len(axes[p])
    fixed = [p for p in axes if p not in drawn and p not in panel_axes]
    count = math.prod(len(axes[p]) for p in fixed)
    if count > MAX_SLICES:
        raise ConfigError(f"{count} slices ({' x '.join(fixed)}), at most {MAX_SLICES}; "
                          f"`rsdgc-sim plot --where PATH=VALUE` draws one")
    combos: list[dict[str, Any]] = [{}]
    for p in fixed:
        combos = [{**c, p: v} for c in combos for v in axes[p]]
    return combos


def _axis_path(name: str, axes: Mapping[str, list[Any]]) -> tuple[str, str | None]:
    """``name`` -> (the swept axis, the field inside its mapping values or None)."""
    path = resolve_path(name)
    if path in axes:
        return path, None
    for p in axes:
        if path.startswith(p + ".") and all(isinstance(v, Mapping) for v in axes[p]):
            return p, path[len(p) + 1:]
    have = ", ".join(axes) or "none: these results have one point"
    near = difflib.get_close_matches(path, list(axes) + list(FLAT_AXES.values()), n=1)
    hint = f"; did you mean {near[0]!r}?" if near and near[0] in axes else ""
    raise ConfigError(f"--where {name}: not a swept axis of these results (swept: {have})"
                      f"{hint}")


def _read_value(path: str, raw: Any) -> Any:
    """``raw`` as the axis holds it: a bandwidth in bytes/s, a latency in s (with the unit
    the scenario takes), anything else read as YAML; not text: as is."""
    if not isinstance(raw, str):
        return raw
    from ...units import parse_bandwidth, parse_duration  # lazy: imports pydantic
    from ...yaml_file import parse_yaml

    parse = {"cluster.bandwidth": parse_bandwidth, "cluster.latency": parse_duration}.get(path)
    if parse is not None:
        return parse(raw, f"--where {path}", unit_required=True)
    return parse_yaml(raw, f"--where {path}")


def _field(value: Any, sub: str | None) -> Any:
    for key in (sub.split(".") if sub else []):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _equal(a: Any, b: Any) -> bool:
    """Axis values alike: numbers to 1e-9 (a flag only to a flag), lists as tuples,
    mappings key by key."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _yaml_text(v: Any) -> str:
    """A value written as YAML on one line (``true``, ``[1, 2]``, ``{name: ring}``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int | float):
        return f"{v:g}"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_yaml_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_yaml_text(x) for x in v) + "]"
    return str(v)


def _slug(ax, v: Any) -> str:
    """A value as part of a file name: ``10Gbitps``, ``5us``, ``fat_tree-k8``, ``on``."""
    text = ax.tick(v) if ax.numeric else value_words(v)
    text = text.replace("/s", "ps").replace("=", "")
    text = re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-")
    return text or "none"


def _shown(raw: Any) -> str:
    return raw if isinstance(raw, str) and len(raw) <= 60 else excerpt(raw)
