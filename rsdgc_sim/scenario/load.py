"""Reading scenario files: YAML (``safe_load``) -> validated :class:`Scenario`.

Every mistake becomes one :class:`~rsdgc_sim.errors.ConfigError` (or ScenarioFileError)
whose message names the file, the field's path and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ..yaml_file import read_yaml_file
from .model import Scenario
from .overrides import apply_overrides, describe_overrides
from .sweep import MAX_VARIANTS_HARD, check_sweep
from .validate import validate_scenario


def bundled_path(name: str = "quickstart") -> Path:
    """Path of a scenario shipped inside the package (``quickstart``: the default of `run`)."""
    return Path(str(resources.files("rsdgc_sim") / "data" / f"{name}.yaml"))


def scenario_from_dict(data: Any, source: str = "scenario", base_dir: str | Path | None = None,
                       max_variants: int | None = None,
                       checked: set[tuple] | None = None) -> Scenario:
    """Validate plain data (as from YAML) into a Scenario
    (:func:`rsdgc_sim.scenario.validate.validate_scenario`), and with a ``sweep`` every one
    of its variants too, now, before anything is measured.

    Relative file paths in it (``cluster.calibration`` and a topology given as a file,
    ``cluster.topology.name: my_lab.yaml``) are taken from ``base_dir`` (the scenario file's
    folder; default: the working directory) and stored absolute. ``max_variants`` raises
    (or lowers) the cap on the sweep's combinations (default
    :data:`~rsdgc_sim.scenario.sweep.MAX_VARIANTS`, at most
    :data:`~rsdgc_sim.scenario.sweep.MAX_VARIANTS_HARD`). ``checked``: the registry checks
    passed already (:func:`~rsdgc_sim.scenario.validate.check_names`), filled with those
    passed now."""
    if checked is None:
        checked = set()  # the scenario's and its sweep's checks share one
    scenario = validate_scenario(data, source, base_dir, checked)
    if max_variants is not None:
        scenario._max_variants = min(int(max_variants), MAX_VARIANTS_HARD)
    if scenario.sweep:
        check_sweep(scenario, source, checked=checked)
    return scenario


def read_yaml(path: str | Path) -> Any:
    """A YAML file's data (:func:`rsdgc_sim.yaml_file.read_yaml_file`: regular files only,
    duplicate keys and alias bombs refused), errors as ScenarioFileError."""
    return read_yaml_file(path)


def load_scenario(path: str | Path | None = None, max_variants: int | None = None,
                  overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
                  checked: set[tuple] | None = None) -> Scenario:
    """Load and validate a scenario file; ``None`` loads the bundled quickstart.
    ``max_variants``, ``checked``: as for :func:`scenario_from_dict`. ``overrides``: path -> value
    (plain data, as YAML gives it), set in the file's data before it is validated
    (:func:`rsdgc_sim.scenario.overrides.apply_overrides`; the CLI's ``--set``); errors
    name the file and the overrides."""
    p = bundled_path() if path is None else Path(path)
    data, source = read_yaml(p), str(p)
    pairs = list(overrides.items() if isinstance(overrides, Mapping) else overrides)
    if pairs:
        data = apply_overrides(data, pairs)
        source = f"{p} with {describe_overrides(pairs)}"
    return scenario_from_dict(data, source=source, base_dir=p.parent,
                              max_variants=max_variants, checked=checked)
