"""Sweeps over any scenario field: ``sweep: {dotted.path: [values...]}`` expanded into one
validated scenario per combination (a *variant*), each with its own cluster grid.

>>> variants = expand_sweep(scenario)                 # doctest: +SKIP
>>> variants[0].values                                # doctest: +SKIP
{'cluster.topology.name': 'switch', 'compressors.1.density': 0.1}

Paths are dotted, list indices are integers (``compressors.1.density``). A path names a
field of the scenario (or a new parameter of a compressor, a topology or a collective);
anything else is an error naming the nearest valid path. Every variant is built through
the strict scenario model and its registries (``validate_scenario``), so a wrong value
type fails here, at load, before anything is measured.

The list-valued ``cluster.workers``, ``cluster.bandwidth`` and ``cluster.latency`` are the
grid inside every variant; they cannot be swept (list their values in ``cluster``).
"""

from __future__ import annotations

import difflib
import itertools
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError, RsdgcError
from ..strict import excerpt
from ..units import bandwidth_text, duration_text
from .model import Scenario
from .validate import validate_scenario

#: the grid axes inside every variant, in nesting order (dotted path -> GridPoint field)
GRID_AXES = {"cluster.workers": "workers", "cluster.bandwidth": "bandwidth_bytes_per_s",
             "cluster.latency": "latency_s"}


@dataclass(frozen=True)
class Variant:
    """One combination of the swept values (path -> value as written) and its scenario."""

    values: dict[str, Any]
    scenario: Any  # Scenario (no sweep)


def split_path(path: str) -> list[str | int]:
    """``compressors.1.density`` -> ``["compressors", 1, "density"]``."""
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path in plain data (inner nodes and leaves)."""
    out: list[str] = []
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, list) else ())
    for k, v in items:
        p = f"{prefix}.{k}" if prefix else str(k)
        out.append(p)
        out += _paths(v, p)
    return out


def _unwrap(ann: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X (the first non-None member)."""
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann


def _is_open(model: type[BaseModel], parts: list[str | int]) -> bool:
    """Whether the container at ``parts`` takes keys of the user's choosing (a compressor's
    or a topology's parameters, ``collective_params``): a model with ``extra="allow"`` or a
    dict."""
    ann: Any = model
    for p in parts:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(str(p))
            if field is None:
                return False
            ann = field.annotation
        elif typing.get_origin(ann) is list and isinstance(p, int):
            ann = typing.get_args(ann)[0]
        else:
            return False
    ann = _unwrap(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann.model_config.get("extra") == "allow"
    return typing.get_origin(ann) is dict


def _bad_path(path: str, data: dict, why: str) -> ConfigError:
    near = difflib.get_close_matches(path, _paths(data), n=1, cutoff=0.6)
    hint = f"; nearest valid path: {near[0]}" if near else ""
    return ConfigError(f"sweep: {path!r} {why}{hint}")


def check_path(path: str, data: dict, model: type[BaseModel]) -> list[str | int]:
    """The parts of ``path`` if it can be set in ``data`` (the scenario as plain data), else
    a ConfigError naming the nearest valid path."""
    if len(path) > MAX_PATH_CHARS:  # named, never echoed (nor matched against every path)
        raise ConfigError(f"sweep: {excerpt(path)} ({len(path):,} characters) is not a path "
                          f"of this scenario (the longest is far below {MAX_PATH_CHARS})")
    if not path or any(not p for p in path.split(".")):
        raise _bad_path(path, data, "is not a dotted path (fields joined by dots)")
    parts = split_path(path)
    for axis in GRID_AXES:
        if path == axis or path.startswith(axis + "."):
            raise ConfigError(f"sweep: {path!r} is already a grid axis: list its values in "
                              f"{axis} instead")
    if parts[0] in ("sweep", "schema_version"):
        raise ConfigError(f"sweep: {path!r} cannot be swept")
    node: Any = data
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not isinstance(p, int):
                raise _bad_path(path, data, f"needs a list index (0 to {len(node) - 1}) after "
                                f"{'.'.join(map(str, parts[:i]))}")
            if p >= len(node):
                raise _bad_path(path, data, f"indexes past the end of "
                                f"{'.'.join(map(str, parts[:i]))} ({len(node)} entries)")
        elif isinstance(node, dict):
            if str(p) not in node:
                if last and _is_open(model, parts[:i]):
                    return parts  # a new parameter of a compressor, topology or collective
                raise _bad_path(path, data, "is not a field of this scenario")
            p = str(p)
        else:
            raise _bad_path(path, data, f"goes inside {'.'.join(map(str, parts[:i]))}, "
                            f"which is a value ({excerpt(node)})")
        node = node[p]
    return parts


def _with(data: Any, parts: list[str | int], value: Any) -> Any:
    """``data`` with ``value`` at ``parts``: a new container for each level of the path,
    everything else shared (a deep copy of the whole scenario per variant took most of a
    large sweep's load time; validation does not change its input)."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(data, list):
        out = list(data)
        out[int(head)] = _with(data[int(head)], rest, value)
        return out
    out = dict(data)
    out[str(head)] = _with(data.get(str(head)), rest, value) if rest else value
    return out


def format_value(value: Any) -> str:
    """A swept value in a title: ``fat_tree(k=8)`` for a section with a name, ``[1, 2]``
    for a list, the value itself otherwise."""
    if isinstance(value, dict):
        rest = ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if k != "name")
        return f"{value['name']}({rest})" if "name" in value and rest else str(
            value.get("name", "{" + rest + "}"))
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def describe(values: dict[str, Any]) -> str:
    """``cluster.topology=fat_tree(k=8), ddp.overlap=False``."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items())


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={excerpt(v, 30)}" for k, v in values.items())


#: the most combinations a sweep may have: each is validated (and may need a profile)
#: before anything runs; a larger one is refused at once with its size, never validated
#: for hours
MAX_VARIANTS = 10_000
#: the most ``run --max-variants`` raises it to (each variant is a validated scenario in
#: memory: about 10 KB)
MAX_VARIANTS_HARD = 1_000_000

#: a swept path longer than this is refused without being echoed in full
MAX_PATH_CHARS = 200


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sweep_size(scenario: Scenario) -> int:
    """The number of variants (the product of the sweep's list lengths; 1 without one)."""
    n = 1
    for values in scenario.sweep.values():
        n *= len(values)
    return n


def _prepared(scenario: Scenario, source: str) -> tuple[dict, dict[str, list[str | int]]]:
    """The scenario as plain data (without its sweep) and each swept path's parts, after
    the size cap and the paths are checked."""
    cap = scenario._max_variants or MAX_VARIANTS
    if (n := sweep_size(scenario)) > cap:
        sizes = " x ".join(f"{len(v)} {p}" for p, v in scenario.sweep.items())
        more = "" if n > MAX_VARIANTS_HARD else " (or raise the cap: run --max-variants N)"
        raise ConfigError(f"{source}: sweep: {n:,} combinations ({_short(sizes)}), more than the "
                          f"{cap:,} a study takes{more} (each is validated, and may need a "
                          f"profile, before anything runs): sweep fewer values, or split the "
                          f"study")
    data = scenario.model_dump(mode="json", exclude={"sweep"})
    # validated again per variant: the grid's SI values with their units (read back exactly)
    cl = data["cluster"]
    cl["bandwidth"] = [bandwidth_text(b) for b in cl["bandwidth"]]
    cl["latency"] = [duration_text(t) for t in cl["latency"]]
    try:
        parts = {path: check_path(path, data, Scenario) for path in scenario.sweep}
    except ConfigError as e:
        raise e.with_context(source) from None
    return data, parts


def _build(data: dict, parts: dict[str, list[str | int]], values: dict[str, Any], source: str,
           base_dir: str | Path | None, checked: set[tuple]) -> Scenario:
    """The validated scenario of ``data`` with the swept ``values`` set."""
    point = data
    for path, value in values.items():
        point = _with(point, parts[path], value)
    try:
        return validate_scenario(point, source=f"sweep point {_describe(values)}",
                                 base_dir=base_dir, checked=checked)
    except RsdgcError as e:
        raise e.with_context(source) from None


def sweep_groups(paths: list[str]) -> list[list[str]]:
    """The swept paths that the scenario's checks read together: those under the same
    top-level field. Every check of a scenario reads one top-level section (a field's
    constraints, a section's own validators, its names in the registries: the model's name
    with its input size, one compressor's parameters, the topology with the worker counts)
    or, ``Scenario._unique_labels``, only ``compressors``; so a combination is valid exactly
    when each group's part of it is, and a group's combinations are checked with the other
    paths at their first values. A check that reads two sections must merge their groups
    here (``tests/test_sweep.py`` compares with checking every combination)."""
    groups: dict[str | int, list[str]] = {}
    for path in paths:
        groups.setdefault(split_path(path)[0], []).append(path)
    return list(groups.values())


@dataclass(frozen=True)
class _Group:
    """Swept paths checked together: their top-level ``field``, and that field's validated
    value for each of their combinations (in product order)."""

    paths: list[str]
    field: str
    sections: list[Any]


def _checked_groups(scenario: Scenario, source: str, base_dir: str | Path | None,
                    checked: set[tuple] | None = None) -> tuple[Scenario, list[_Group]]:
    """Every group's combinations validated (the other paths at their first values): the
    scenario of the first combination and, per group, its field's validated values. Done
    once per scenario: loading checks them, and the run's variants reuse that check.
    ``checked``: as for :func:`~rsdgc_sim.scenario.validate.check_names`."""
    # the whole scenario is in the key: a copy with another sweep or field (model_copy
    # keeps private attributes) must be checked again
    key = (str(base_dir), scenario._max_variants, scenario.model_dump_json())
    if scenario._checked_sweep is not None and scenario._checked_sweep[0] == key:
        return scenario._checked_sweep[1]
    data, parts = _prepared(scenario, source)
    first = {path: values[0] for path, values in scenario.sweep.items()}
    if checked is None:
        checked = set()  # names checked once for all the combinations
    base = _build(data, parts, first, source, base_dir, checked)
    groups = []
    for paths in sweep_groups(list(scenario.sweep)):
        field = str(split_path(paths[0])[0])
        sections = [
            getattr(_build(data, parts, {**first, **dict(zip(paths, combo, strict=True))},
                           source, base_dir, checked), field)
            for combo in itertools.product(*(scenario.sweep[p] for p in paths))]
        groups.append(_Group(paths, field, sections))
    scenario._checked_sweep = (key, (base, groups))
    return base, groups


def check_sweep(scenario: Scenario, source: str = "scenario",
                base_dir: str | Path | None = None, checked: set[tuple] | None = None) -> int:
    """Check every combination of the swept values, at load, before anything is measured:
    each group of paths that are checked together (:func:`sweep_groups`) in all its
    combinations, so a sweep of 100,000 combinations over four fields costs the sum of
    their lengths, not their product. Returns the number of combinations; errors as for
    :func:`expand_sweep`. ``checked``: as for
    :func:`~rsdgc_sim.scenario.validate.check_names`."""
    if not scenario.sweep:
        return 1
    _checked_groups(scenario, source, scenario._base_dir if base_dir is None else base_dir,
                    checked)
    return sweep_size(scenario)


class Variants(Sequence[Variant]):
    """The variants of a sweep, in product order (the first path varies slowest). Each
    group's combinations are validated once (:func:`check_sweep`); a variant is the first
    combination's scenario with each group's validated field put in, shared, not copied
    (scenarios are not changed after validation), so 100,000 variants take a second and
    little memory."""

    def __init__(self, scenario: Scenario, source: str, base_dir: str | Path | None):
        self._base, self._groups = _checked_groups(scenario, source, base_dir)
        self._sweep = scenario.sweep
        self._len = sweep_size(scenario)

    def __len__(self) -> int:
        return self._len

    @staticmethod
    def _digits(index: int, sizes: list[int]) -> list[int]:
        """``index`` in the mixed radix of ``sizes`` (the last varies fastest)."""
        out = []
        for size in reversed(sizes):
            index, i = divmod(index, size)
            out.append(i)
        return out[::-1]

    @typing.overload
    def __getitem__(self, index: int) -> Variant: ...

    @typing.overload
    def __getitem__(self, index: slice) -> list[Variant]: ...

    def __getitem__(self, index: int | slice) -> Variant | list[Variant]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if not -self._len <= index < self._len:
            raise IndexError(f"variant {index} of {self._len}")
        paths = list(self._sweep)
        at = dict(zip(paths, self._digits(index % self._len,
                                          [len(self._sweep[p]) for p in paths]), strict=True))
        update = {}
        for g in self._groups:
            i = 0
            for p in g.paths:  # the group's combination, in its own product order
                i = i * len(self._sweep[p]) + at[p]
            update[g.field] = g.sections[i]
        values = {p: self._sweep[p][i] for p, i in at.items()}
        return Variant(values, self._base.model_copy(update=update))


def expand_sweep(scenario: Scenario, source: str = "scenario",
                 base_dir: str | Path | None = None) -> Sequence[Variant]:
    """One validated scenario per combination of the swept values, in product order (the
    first path varies slowest), built as each is asked for (:class:`Variants`); a scenario
    without ``sweep`` is its own only variant.

    Relative file paths among the values are taken from ``base_dir`` (default: the scenario
    file's folder, else the working directory); every error is one ConfigError starting
    with ``source`` and naming the path or the combination (the size cap and the paths
    are checked here; the combinations by :func:`check_sweep`, which loading runs)."""
    if base_dir is None:
        base_dir = scenario._base_dir
    if not scenario.sweep:
        return [Variant(values={}, scenario=scenario)]
    return Variants(scenario, source, base_dir)
