"""Shared fixtures: small scenarios written to tmp folders, an isolated profile cache."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

# DDP ranks fork from a server with torch imported (rsdgc_sim.emulate.forked): 3-4 s of
# CPU saved per rank; the ranks' results are what the tests check, not their timings.
# tests/test_forked_ranks.py shows a forked rank is the subprocess it replaces (the default
# outside the tests), on loopback and in a network namespace.
os.environ.setdefault("RSDGC_SIM_FORK_RANKS", "1")

#: the smallest real scenario: cnn_small on 16x16 images, CPU, 2 compressors, a 2x2 grid
TINY = {
    "schema_version": 1,
    "name": "tiny",
    "model": {"name": "cnn_small", "num_classes": 10, "input_size": 16},
    "batch_size": 4,
    "device": "cpu",
    "profile": {"warmup": 1, "iterations": 2},
    "compressors": [{"name": "none"}, {"name": "topk", "density": 0.1}],
    "cluster": {"workers": [1, 4], "topology": {"name": "switch"}, "bandwidth": ["1Gbit/s", "10Gbit/s"], "latency": "5us"},
    "ddp": {"bucket_cap": "25MiB", "first_bucket": "1MiB", "overlap": True},
}


@pytest.fixture
def tiny() -> dict:
    """A fresh copy of the tiny scenario as plain data."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_scenario(tmp_path: Path):
    """write_scenario(data) -> path of a YAML file holding ``data``."""

    def write(data, name: str = "scenario.yaml") -> Path:
        p = tmp_path / name
        p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return p

    return write


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's profile cache."""
    monkeypatch.setenv("RSDGC_SIM_CACHE", str(tmp_path_factory.mktemp("cache")))

