"""Overrides of a scenario's fields (the CLI's ``--set PATH=VALUE``), applied to its plain
data, as read from YAML, before it is validated.

>>> data = {"cluster": {"workers": [1, 4, 16], "bandwidth": "1Gbit/s"}}
>>> apply_overrides(data, [("cluster.workers", 8)])["cluster"]
{'workers': 8, 'bandwidth': '1Gbit/s'}

Paths are those of ``sweep:`` (:mod:`rsdgc_sim.scenario.sweep`): dotted, list indices as
integers (``compressors.1.density``), a new parameter of a compressor, a topology or a
collective allowed; the grid axes (``cluster.workers``, ``cluster.bandwidth``,
``cluster.latency``) too, since an override sets a value rather than sweeping it. A field
the file leaves at its default can be set (``ddp.overlap``): the path is checked against
the schema, not only against the file. ``sweep.PATH`` adds or replaces one swept path (its
value a list), ``sweep`` the whole section (``sweep={}`` drops it).

Nothing here validates the values: the result goes through the strict schema like a file
(so ``10Gbit/s`` is read as in a file, relative paths start at the file's folder, and a
bad value is one error naming its path). A path that is not in the scenario nor in its
schema is a ConfigError naming the nearest valid path.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError
from ..strict import excerpt
from ..yaml_file import parse_yaml
from .model import Scenario
from .sweep import MAX_PATH_CHARS, _paths, split_path

__all__ = ["apply_overrides", "describe_overrides", "parse_override"]

#: the option's name in messages
OPTION = "--set"


def parse_override(text: str) -> tuple[str, Any]:
    """``"cluster.workers=8"`` -> ``("cluster.workers", 8)``: the text after the first ``=``
    read as YAML (``10Gbit/s`` a string, ``[0.1, 0.01]`` a list, ``{model: V100}`` a
    mapping, nothing: null)."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ConfigError(f"{OPTION}: expected PATH=VALUE (e.g. cluster.workers=8), got "
                          f"{excerpt(text)}")
    if len(path) > MAX_PATH_CHARS:
        raise ConfigError(f"{OPTION}: {excerpt(path)} ({len(path):,} characters) is not a "
                          f"path of a scenario (the longest is far below {MAX_PATH_CHARS})")
    return path, parse_yaml(raw, f"{OPTION} {path}")


def describe_overrides(overrides: Iterable[tuple[str, Any]]) -> str:
    """``--set cluster.workers=8 --set ddp.overlap=False``, each value cut short."""
    return " ".join(f"{OPTION} {path}={_value_text(v)}" for path, v in overrides)


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def apply_overrides(data: Any, overrides: Mapping[str, Any] | Iterable[tuple[str, Any]],
                    model: type[BaseModel] = Scenario) -> Any:
    """``data`` (a scenario as plain data) with each override set, in order: a new
    container for each level of a path, the rest shared (``data`` is not changed). A path
    given twice, or one that is neither in ``data`` nor in ``model``'s schema, is a
    ConfigError naming it (and the nearest valid path). Data that is not a mapping is
    returned as it is (validation says what it is)."""
    pairs = list(overrides.items() if isinstance(overrides, Mapping) else overrides)
    seen: set[str] = set()
    for path, _ in pairs:
        if path in seen:
            raise ConfigError(f"{OPTION} {path}: given twice")
        seen.add(path)
    if not isinstance(data, dict):
        return data
    for path, value in pairs:
        if path == "sweep" or path.startswith("sweep."):
            data = _set_sweep(data, path, value)
        else:
            data = _put(data, check_override_path(path, data, model), value)
    return data


def _set_sweep(data: dict, path: str, value: Any) -> dict:
    """``sweep`` replaced, or ``sweep.PATH`` (PATH itself dotted) added or replaced; the
    swept path is checked when the sweep is (at load), as a file's is."""
    if path == "sweep":
        return {**data, "sweep": value}
    swept = path.removeprefix("sweep.")
    if not swept or any(not p for p in swept.split(".")):
        raise ConfigError(f"{OPTION} {path}: expected sweep.PATH=[values...], with PATH "
                          f"dotted as in sweep: (e.g. sweep.compressors.1.density=[0.1, 0.01])")
    if not isinstance(value, list):
        raise ConfigError(f"{OPTION} {path}: a swept path takes a list of values, e.g. "
                          f"{path}=[{_value_text(value)}], got {excerpt(value)}")
    old = data.get("sweep")
    return {**data, "sweep": {**(old if isinstance(old, dict) else {}), swept: value}}


def check_override_path(path: str, data: dict, model: type[BaseModel] = Scenario
                        ) -> list[str | int]:
    """The parts of ``path`` if it can be set in ``data``: each part a key present in the
    data or a field of the schema at that place (a new key of an open section: a
    compressor's or a topology's parameters, ``collective_params``), each index within its
    list; else a ConfigError naming the nearest valid path."""
    if not path or any(not p for p in path.split(".")):
        raise _bad(path, data, model, "is not a dotted path (fields joined by dots)")
    parts = split_path(path)
    node: Any = data
    ann: Any = model
    for i, p in enumerate(parts):
        above = ".".join(map(str, parts[:i]))
        if isinstance(node, list) or (node is None and isinstance(p, int)):
            size = len(node) if isinstance(node, list) else 0
            if not isinstance(p, int):
                raise _bad(path, data, model, f"needs a list index (0 to {size - 1}) after "
                                              f"{above}")
            if p >= size:
                raise _bad(path, data, model, f"indexes past the end of {above} ({size} "
                                              f"entries)")
            node, ann = node[p], _child(ann, p)[1]
            continue
        if node is not None and not isinstance(node, dict):
            raise _bad(path, data, model, f"goes inside {above}, which is a value "
                                          f"({excerpt(node)})")
        key = str(p)
        ok, child = _child(ann, key)
        if isinstance(node, dict) and key in node:
            node, ann = node[key], child if ok else Any
            continue
        if not ok:
            raise _bad(path, data, model, "is not a field of this scenario")
        node, ann = None, child  # absent from the file: set (levels below made as needed)
    return parts


def _put(node: Any, parts: list[str | int], value: Any) -> Any:
    """``node`` with ``value`` at ``parts``, missing mappings made on the way."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        out = list(node)
        out[int(head)] = _put(node[int(head)], rest, value)
        return out
    out = dict(node) if isinstance(node, dict) else {}
    out[str(head)] = _put(out.get(str(head)), rest, value)
    return out


def _unwrap(ann: Any) -> Any:
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann


def _child(ann: Any, key: str | int) -> tuple[bool, Any]:
    """Whether the schema at ``ann`` takes ``key``, and the annotation under it (``Any``
    where the schema leaves it open: a dict, an ``extra="allow"`` model's new keys)."""
    ann = _unwrap(ann)
    if ann is Any:
        return True, Any
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(ann):
            ok, child = _child(member, key)
            if ok:
                return True, child
        return False, None
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        field = ann.model_fields.get(str(key))
        if field is not None:
            return True, field.annotation
        return ann.model_config.get("extra") == "allow", Any
    if origin is list and isinstance(key, int):
        return True, typing.get_args(ann)[0]
    if origin is dict:
        args = typing.get_args(ann)
        return True, args[1] if len(args) == 2 else Any
    return False, None


def _schema_paths(ann: Any, prefix: str = "") -> list[str]:
    """The dotted paths of the schema's fields (inside its sections, not its lists)."""
    ann = _unwrap(ann)
    if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
        return []
    out: list[str] = []
    for name, field in ann.model_fields.items():
        p = f"{prefix}.{name}" if prefix else name
        out += [p, *_schema_paths(field.annotation, p)]
    return out


def _bad(path: str, data: dict, model: type[BaseModel], why: str) -> ConfigError:
    candidates = list(dict.fromkeys(_paths(data) + _schema_paths(model)))
    near = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    hint = f"; nearest valid path: {near[0]}" if near else ""
    return ConfigError(f"{OPTION} {excerpt(path)} {why}{hint}")
