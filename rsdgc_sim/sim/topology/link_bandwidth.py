"""Whether a topology's links carry their own bandwidth (:func:`links_carry_bandwidth`):
then the scenario's bandwidth (the CLI's ``--bandwidth``) is not needed to build it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import ConfigError, UnknownNameError
from ...strict import excerpt
from .build import resolve_topology_path
from .file import read_file
from .params import TOPOLOGIES, check_topology_params


def links_carry_bandwidth(name: str, params: Mapping[str, Any] | None = None) -> bool:
    """True when topology ``name`` (a generator, a bundled file or a YAML path, with
    ``params`` as :func:`~rsdgc_sim.sim.topology.build_topology` takes them) sets the
    bandwidth of every link without the ``bandwidth`` argument of ``build_topology``:
    ``gpu_cluster`` whose ``nic`` comes from a preset or a parameter, and topology files
    whose every link gives its ``bandwidth`` (a generator file: as its generator with the
    file's parameters and ``params``). Nothing is built; the parameters are checked (the
    errors of ``build_topology``)."""
    if not isinstance(name, str):
        raise ConfigError(f"topology: expected a name, got {excerpt(name)}")
    params = dict(params or {})
    if name in TOPOLOGIES:
        return check_topology_params(name, params).links_carry_bandwidth()
    if name == "file":
        fp = check_topology_params("file", params)
        path = Path(fp.path)
        user = {k: v for k, v in params.items() if k != "path"}
    else:
        path = resolve_topology_path(name)
        user = params
    if path is None:  # not a file name
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise UnknownNameError("topology", shown, TOPOLOGIES.names())
    tf = read_file(path)
    if tf.generator is not None:
        if tf.generator not in TOPOLOGIES:
            return False  # build_topology says why
        return check_topology_params(tf.generator,
                                     {**tf.params, **user}).links_carry_bandwidth()
    return all(ln.bandwidth is not None for ln in tf.links)


__all__ = ["links_carry_bandwidth"]
