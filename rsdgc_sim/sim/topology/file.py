"""Topology files: :class:`TopologyFile` (a generator and its parameters, or explicit
hosts, switches and links), read once per file version and checked, every problem one
error naming the file; :func:`explicit_topology` builds the graph of an explicit one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, model_validator

from ...errors import ConfigError, ScenarioFileError
from ...strict import Strict, excerpt, validation_message
from ...yaml_file import read_yaml_file
from .graph import Topology, add_link
from .params import LinkSpec

if TYPE_CHECKING:  # types only
    pass


class TopologyFile(Strict):
    """A topology file: either ``generator`` (+ ``params``) or explicit ``hosts``,
    ``switches`` and ``links``; ``link_overrides`` apply to either. Node names are unique
    (a host is not also a switch), links join known nodes, at most one link per pair."""

    name: str = ""
    description: str = ""
    generator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    hosts: list[str] = Field(default_factory=list)
    switches: list[str] = Field(default_factory=list)
    links: list[LinkSpec] = Field(default_factory=list)
    link_overrides: list[LinkSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TopologyFile:
        if self.generator is not None:
            if self.hosts or self.switches or self.links:
                raise ValueError("give either generator (with params) or hosts, switches "
                                 "and links, not both")
            return self
        if self.params:
            raise ValueError("params: only a generator takes params (the file has no "
                             "generator)")
        if not self.hosts:
            raise ValueError("hosts: at least one host needed (or a generator)")
        kind: dict[str, str] = {}
        for field, names in (("hosts", self.hosts), ("switches", self.switches)):
            for k, x in enumerate(names):
                if x in kind:
                    again = "given twice" if kind[x] == field else f"also in {kind[x]}"
                    raise ValueError(f"{field}[{k}]: {excerpt(x)} is {again}")
                kind[x] = field
        seen: dict[frozenset, int] = {}
        for k, ln in enumerate(self.links):
            for x in ln.between:
                if x not in kind:
                    raise ValueError(f"links[{k}].between: unknown node {excerpt(x)} (not in "
                                     f"hosts or switches)")
            pair = frozenset(ln.between)
            if pair in seen:
                a, b = ln.between
                raise ValueError(f"links[{k}]: the link between {excerpt(a)} and {excerpt(b)} "
                                 f"is given twice (links[{seen[pair]}])")
            seen[pair] = k
        return self


def file_label(path: Path) -> str:
    text = str(path)
    return f"topology file {text if len(text) <= 200 else text[:197] + '...'}"


#: checked topology files by (path, device, inode, size, modification time): a file is
#: read once however many topologies are built from it (a large file takes seconds)
_FILES: dict[tuple, TopologyFile] = {}
_FILES_KEPT = 16


def read_file(path: Path) -> TopologyFile:
    """A topology file read with :func:`~rsdgc_sim.yaml_file.read_yaml_file` and checked;
    every problem is one error naming the file."""
    try:
        st = path.stat()
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):  # read_yaml_file says why
        key = None
    if key is not None and key in _FILES:
        return _FILES[key]
    tf = _parse_file(path)
    if key is not None:
        if len(_FILES) >= _FILES_KEPT:
            del _FILES[next(iter(_FILES))]
        _FILES[key] = tf
    return tf


def _parse_file(path: Path) -> TopologyFile:
    where = file_label(path)
    try:
        data = read_yaml_file(path)
    except ScenarioFileError as e:
        raise ScenarioFileError(f"topology file {e}") from None
    if not isinstance(data, dict):
        raise ScenarioFileError(f"{where}: expected a mapping at the top, got "
                                f"{type(data).__name__}")
    try:
        return TopologyFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{where}: {validation_message(e, TopologyFile)}") from None


def explicit_topology(tf: TopologyFile, path: Path, bandwidth: float, latency: float) -> Topology:
    import networkx as nx  # lazy: networkx (0.3 s), only where a graph is built
    g = nx.Graph()
    g.add_nodes_from(tf.hosts, kind="host")
    g.add_nodes_from(tf.switches, kind="switch")
    for ln in tf.links:
        bw = bandwidth if ln.bandwidth is None else ln.bandwidth
        lat = latency / 2 if ln.latency is None else ln.latency
        add_link(g, *ln.between, bw, lat)
    return Topology(tf.name or path.stem, g, list(tf.hosts))
