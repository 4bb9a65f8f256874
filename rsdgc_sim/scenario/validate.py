"""Validating plain data (as from YAML) into a :class:`Scenario`: the strict schema, then
every name in it (models, compressors, topologies, collectives) and its file paths made
absolute. One scenario, without expanding its ``sweep`` (:mod:`rsdgc_sim.scenario.sweep`
builds each variant through here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, RsdgcError
from ..strict import excerpt, validation_message
from .model import Scenario


def validate_scenario(data: Any, source: str = "scenario", base_dir: str | Path | None = None,
                      checked: set[tuple] | None = None) -> Scenario:
    """Validate plain data (as from YAML) into a Scenario, then check every name in it.

    Relative file paths in it (``cluster.calibration`` and a topology given as a file,
    ``cluster.topology.name: my_lab.yaml``) are taken from ``base_dir`` (the scenario file's
    folder; default: the working directory) and stored absolute. A ``sweep`` is kept as it
    is (its variants: :func:`rsdgc_sim.scenario.sweep.expand_sweep`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {validation_message(e, Scenario)}") from None
    try:
        scenario = _resolve_paths(scenario, Path(base_dir or "."))
        check_names(scenario, checked)
    except RsdgcError as e:
        raise e.with_context(source) from None
    if scenario.sweep:  # relative paths among the swept values start at the file's folder
        scenario._base_dir = str(Path(base_dir or ".").resolve())
    return scenario


#: `train.dataset` names that are not folders (:data:`rsdgc_sim.train.data.DATASETS`; kept
#: here so that loading a scenario does not import torch)
BUILTIN_DATASETS = ("synthetic", "synthetic_rs", "fashion_mnist")


def _absolute(base: Path, field: str, value: str) -> str:
    """``value``, a path from field ``field``, made absolute against ``base``; a path no file
    system can hold (a NUL byte in it) is a ConfigError naming the field."""
    if "\0" in value:
        raise ConfigError(f"{field}: {excerpt(value)} is not a path (it holds a NUL byte)")
    return str((base / Path(value).expanduser()).resolve())


def _resolve_paths(scenario: Scenario, base: Path) -> Scenario:
    """Relative file paths (calibration, topology and profile files, a data folder) made
    absolute against ``base`` (the scenario's folder)."""
    cl = scenario.cluster
    update: dict[str, Any] = {}
    if cl.calibration:
        update["calibration"] = _absolute(base, "cluster.calibration", cl.calibration)
    if "\0" in cl.topology.name or Path(cl.topology.name).suffix in (".yaml", ".yml"):  # a file
        path = _absolute(base, "cluster.topology.name", cl.topology.name)
        update["topology"] = cl.topology.model_copy(update={"name": path})
    if update:
        scenario = scenario.model_copy(update={"cluster": cl.model_copy(update=update)})
    if scenario.profile.file:
        path = _absolute(base, "profile.file", scenario.profile.file)
        scenario = scenario.model_copy(
            update={"profile": scenario.profile.model_copy(update={"file": path})})
    tr, train_update = scenario.train, {}
    if tr.dataset not in BUILTIN_DATASETS:  # a folder of images
        train_update["dataset"] = _absolute(base, "train.dataset", tr.dataset)
    if tr.data_dir is not None:
        train_update["data_dir"] = _absolute(base, "train.data_dir", tr.data_dir)
    if train_update:
        scenario = scenario.model_copy(update={"train": tr.model_copy(update=train_update)})
    return scenario


def check_names(scenario: Scenario, checked: set[tuple] | None = None) -> None:
    """Names and parameters that only their registries know: model, compressors (with their
    parameters), topology, collectives, fidelity. ``checked``: the checks already passed
    (a sweep's variants share one set, so each distinct model, compressor, topology,
    collective or device is checked once, not once per variant; `run` also fills it with
    the :func:`lasting_checks` an earlier run of the same version passed). Each registry is
    imported by the first check that needs it (numpy, simpy and the simulator's modules
    only when a topology, collective or fidelity is checked)."""
    done = checked if checked is not None else set()

    def once(key: tuple, where: str, check, error: type[RsdgcError] = ConfigError) -> None:
        if key in done:
            return
        try:
            check()
        except error as e:
            raise e.with_context(where) from None
        done.add(key)

    _check_model_and_compressors(scenario, once)
    _check_cluster(scenario, once)
    # a device model's name and numbers (its ConfigError names the field itself)
    if ("device", _key(scenario.device)) not in done:
        scenario.device_model()
        done.add(("device", _key(scenario.device)))
    fidelity = scenario.cluster.fidelity
    if ("fidelity", fidelity) not in done:
        from ..sim.fidelity import FIDELITIES  # lazy: imports numpy and the collectives

        if fidelity not in FIDELITIES:
            raise ConfigError(f"cluster.fidelity: unknown fidelity {fidelity!r}; choose one "
                              f"of: {', '.join(FIDELITIES)}")
        done.add(("fidelity", fidelity))


def _check_model_and_compressors(scenario: Scenario, once) -> None:
    """The model's name and input size, each compressor's name and parameters."""
    from ..models.catalog import CATALOG, check_model

    def compressor(name: str, params: dict[str, Any]) -> None:
        from ..compress.params import check_compressor  # lazy: every compressor's parameters

        check_compressor(name, params)

    m = scenario.model
    once(("model", m.name), "model.name", lambda: CATALOG.get(m.name))
    once(("input", m.name, m.input_size), "model.input_size",
         lambda: check_model(m.name, m.input_size))
    for i, c in enumerate(scenario.compressors):
        once(("compressor", c.name, _key(c.params)), f"compressors[{i}]",
             lambda c=c: compressor(c.name, c.params))


def _check_cluster(scenario: Scenario, once) -> None:
    """The topology (built for every worker count: its parameters, files, whether the
    workers fit, the grid's link values where a gpu_cluster fixes them), the collectives
    and the calibration file."""
    cl = scenario.cluster
    spec = cl.topology.spec()

    def generator() -> None:
        from ..sim.topology import TOPOLOGIES, resolve_topology_path  # lazy: imports numpy

        if resolve_topology_path(cl.topology.name) is None:  # not a file: a generator
            TOPOLOGIES.get(cl.topology.name)

    once(("topology", cl.topology.name), "cluster.topology.name", generator)

    def build(w: int) -> None:
        from ..sim.topology import build_topology  # lazy: imports numpy
        from ..sim.topology.gpu_cluster import check_link_values

        topo = build_topology(spec.name, w, cl.bandwidth[0], cl.latency[0], spec.params)
        check_link_values(topo, cl.bandwidth, cl.latency,
                          latency_default="latency" not in cl.model_fields_set)

    for workers in sorted(set(cl.workers)):
        once(("build", spec.name, _key(spec.params), workers, tuple(cl.bandwidth),
              tuple(cl.latency)),
             f"cluster.topology ({workers} workers)", lambda w=workers: build(w))

    def collective(name: str) -> None:
        from ..sim.collectives import COLLECTIVES  # lazy: imports numpy and simpy

        COLLECTIVES.get(name)

    for field in ("collective", "sparse_collective"):
        once(("collective", getattr(cl, field)), f"cluster.{field}",
             lambda f=field: collective(getattr(cl, f)))
    if cl.collective != "auto":
        def params() -> None:
            from ..sim.collectives import make_collective  # lazy: imports numpy and simpy

            make_collective(cl.collective, cl.collective_params)

        once(("collective_params", cl.collective, _key(cl.collective_params)),
             "cluster.collective_params", params)
    if cl.calibration:
        def calibration() -> None:
            from ..calibration import load_calibration

            load_calibration(cl.calibration)

        once(("calibration", cl.calibration), "cluster.calibration", calibration, RsdgcError)


def lasting_checks(checked: set[tuple]) -> list[tuple]:
    """The passed checks of ``checked`` (from :func:`check_names`) whose outcome depends on
    their key and this package alone, so that a later process of the same version may
    skip them: all but those that read a user's file (a calibration; a topology built from
    a file rather than by a generator)."""
    from ..sim.topology import TOPOLOGIES  # lazy: imports numpy (already, where builds ran)

    return [k for k in checked if k[0] != "calibration"
            and not (k[0] == "build" and k[1] not in TOPOLOGIES)]


def _key(value: Any) -> str:
    """A hashable key of a section's value (its parameters)."""
    return json.dumps(value, sort_keys=True, default=str)
