"""Scenarios: strict YAML configuration of a study (model, compressors, cluster grid)."""

from .load import bundled_path, load_scenario, read_yaml, scenario_from_dict
from .model import SCHEMA_VERSION, CompressorSpec, GridPoint, Scenario
from .validate import check_names, validate_scenario

__all__ = [
    "SCHEMA_VERSION",
    "CompressorSpec",
    "GridPoint",
    "Scenario",
    "bundled_path",
    "check_names",
    "load_scenario",
    "read_yaml",
    "scenario_from_dict",
    "validate_scenario",
]
