"""Reading scenario files: YAML (``safe_load``) -> validated :class:`Scenario`.

Every mistake becomes one :class:`~rsdgc_sim.errors.ConfigError` (or ScenarioFileError)
whose message names the file, the field's path and what is allowed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, RsdgcError, ScenarioFileError
from .model import Scenario


def bundled_path(name: str = "quickstart") -> Path:
    """Path of a scenario shipped inside the package (``quickstart``: the default of `run`)."""
    return Path(str(resources.files("rsdgc_sim") / "data" / f"{name}.yaml"))


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (for 'allowed keys')."""
    cls: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return None
        cls = _unwrap_model(field.annotation)
        if cls is None:
            return None
    return cls


def _unwrap_model(ann: Any) -> type[BaseModel] | None:
    """The model class in an annotation (``Model``, ``list[Model]``, ``Model | None``...)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        if (found := _unwrap_model(arg)) is not None:
            return found
    return None


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    typ = err["type"]
    if typ == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = f"; allowed: {', '.join(owner.model_fields)}" if owner else ""
        return f"{_loc_text(loc)}: unknown key{allowed}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if not loc:  # a check across fields: the message says where
        return msg
    if typ == "missing":
        return f"{_loc_text(loc)}: required field is missing"
    given = err.get("input")
    shown = "" if typ in ("value_error",) or isinstance(given, (dict, list)) else f" (got {given!r})"
    return f"{_loc_text(loc)}: {msg}{shown}"


def validation_message(e: ValidationError) -> str:
    """A pydantic error as one line: ``path: reason; path: reason``."""
    seen: list[str] = []
    for err in e.errors():
        # unions report once per branch; keep the first reason for each path
        text = _describe(err)
        if not any(text.split(":")[0] == s.split(":")[0] for s in seen):
            seen.append(text)
    return "; ".join(seen)


def scenario_from_dict(data: Any, source: str = "scenario", base_dir: str | Path | None = None) -> Scenario:
    """Validate plain data (as from YAML) into a Scenario, then check every name in it.

    Relative file paths in it (``cluster.calibration``) are taken from ``base_dir`` (the
    scenario file's folder; default: the working directory) and stored absolute."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {validation_message(e)}") from None
    if scenario.cluster.calibration:
        path = Path(base_dir or ".") / Path(scenario.cluster.calibration).expanduser()
        cluster = scenario.cluster.model_copy(update={"calibration": str(path.resolve())})
        scenario = scenario.model_copy(update={"cluster": cluster})
    try:
        check_names(scenario)
    except RsdgcError as e:
        raise e.with_context(source) from None
    return scenario


def check_names(scenario: Scenario) -> None:
    """Names and parameters that only their registries know: model, compressors (with their
    parameters), topology, collectives, fidelity."""
    from ..compress import create as create_compressor
    from ..models import MODELS
    from ..sim import COLLECTIVES, FIDELITIES, TOPOLOGIES
    from ..sim.collectives import make_collective
    from ..sim.topology import build_topology, resolve_topology_path

    try:
        MODELS.get(scenario.model.name)
    except ConfigError as e:
        raise e.with_context("model.name") from None
    for i, c in enumerate(scenario.compressors):
        try:
            create_compressor(c.name, **c.params)
        except ConfigError as e:
            raise e.with_context(f"compressors[{i}]") from None
    cl = scenario.cluster
    if resolve_topology_path(cl.topology.name) is None:  # not a topology file: a generator
        try:
            TOPOLOGIES.get(cl.topology.name)
        except ConfigError as e:
            raise e.with_context("cluster.topology.name") from None
    spec = cl.topology.spec()
    for workers in sorted(set(cl.workers)):  # parameters, files, and whether the workers fit
        try:
            build_topology(spec.name, workers, cl.bandwidth[0], cl.latency[0], spec.params)
        except ConfigError as e:
            raise e.with_context(f"cluster.topology ({workers} workers)") from None
    for field in ("collective", "sparse_collective"):
        try:
            COLLECTIVES.get(getattr(cl, field))
        except ConfigError as e:
            raise e.with_context(f"cluster.{field}") from None
    if cl.collective != "auto":
        try:
            make_collective(cl.collective, cl.collective_params)
        except ConfigError as e:
            raise e.with_context("cluster.collective_params") from None
    if cl.calibration:
        from ..emulate.calibration import load_calibration  # torch-free

        try:
            load_calibration(cl.calibration)
        except RsdgcError as e:
            raise e.with_context("cluster.calibration") from None
    if cl.fidelity not in FIDELITIES:
        raise ConfigError(f"cluster.fidelity: unknown fidelity {cl.fidelity!r}; choose one of: {', '.join(FIDELITIES)}")


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file, with file errors as ScenarioFileError."""
    p = Path(path)
    if not p.exists():
        raise ScenarioFileError(f"{p}: no such file")
    if p.is_dir():
        raise ScenarioFileError(f"{p}: is a directory, expected a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioFileError(f"{p}: cannot read: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioFileError(f"{p}: invalid YAML{where}: {problem}") from None


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load and validate a scenario file; ``None`` loads the bundled quickstart."""
    p = bundled_path() if path is None else Path(path)
    return scenario_from_dict(read_yaml(p), source=str(p), base_dir=p.parent)
