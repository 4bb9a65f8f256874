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




#: the groups of test modules that take longest, with their seconds of CPU on the 2-core VM
#: (ranks included): started first, each group in one worker (pytest_collection_modifyitems).
#: A group shares per-process work: the convergence runs its tests compare, the forkserver
#: every real-rank test forks its ranks from (~5 s of CPU to start: torch and torch._dynamo),
#: the NSI score's torch.compile (~4 s).
SLOW_GROUPS: dict[str, tuple[float, tuple[str, ...]]] = {
    "convergence": (40, ("test_compress_convergence.py",)),
    "real ranks": (85, ("test_train_equivalence.py", "test_train_equivalence_powersgd.py",
                        "test_train_equivalence_quantizers.py", "test_emulate.py",
                        "test_calibrate.py", "test_interference.py",
                        "test_profile_bucket_path.py", "test_ddp.py", "test_ddp_buckets.py",
                        "test_emulate_powersgd.py", "test_forked_ranks.py")),
    "plots": (20, ("test_plots.py",)),
    "plot slices": (15, ("test_plot_slices.py",)),
    "nsi compile": (18, ("test_compress_nsi.py", "test_compress_layerwise.py")),
    "run": (16, ("test_run.py",)),
    "study": (8, ("test_study.py",)),
    "docs": (8, ("test_docs.py",)),
    "torchrun example": (8, ("test_ddp_example.py",)),  # two fresh interpreters
}


def _chunk_sizes(n: int, workers: int) -> list[int]:
    """How many of ``n`` tests pytest-xdist's worksteal scheduler first hands each of
    ``workers`` workers: the front of the list, ``remaining // workers_left`` each."""
    sizes: list[int] = []
    for i in range(workers):
        sizes.append((n - sum(sizes)) // (workers - i))
    return sizes


def pytest_collection_modifyitems(session, config, items):
    """The slow groups first, spread over the xdist workers; the other tests after them, in
    collection order. pytest-xdist's worksteal hands each worker a contiguous part of this
    list and an idle worker steals from the *end* of another's queue: with the groups at the
    front of the parts (longest first, each to the least loaded part), no long test starts
    last and makes the tail, a group's shared work is done once, and the short tests at the
    end balance the workers. The order only changes when tests run, not what they check."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    group_of = {m: g for g, (_, mods) in SLOW_GROUPS.items() for m in mods}
    grouped: dict[str, list] = {}
    rest = []
    for item in items:
        g = group_of.get(item.path.name)
        (grouped.setdefault(g, []) if g else rest).append(item)
    parts: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for g in sorted(grouped, key=lambda g: (-SLOW_GROUPS[g][0], g)):
        i = load.index(min(load))
        parts[i].extend(grouped[g])
        load[i] += SLOW_GROUPS[g][0]
    order = []
    for part, size in zip(parts, _chunk_sizes(len(items), workers), strict=True):
        take = max(0, size - len(part))
        order.extend(part + rest[:take])
        rest = rest[take:]
    items[:] = order + rest
