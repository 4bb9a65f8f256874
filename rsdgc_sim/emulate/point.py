"""One launch of N ranks for one grid point (workers, link rate, delay),
on an emulated switch (:mod:`.netns`) or on loopback, every rank pinned to its cores with
its threads (:mod:`.cores`), running every compressor of the scenario in turn
(:mod:`.worker`'s ``train`` task). The network and its qdiscs are removed whatever happens
(a crashed or hung rank included: :mod:`.launcher` names it)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cores import CorePlan
from .launcher import launch, python_argv
from .netns import Network

if TYPE_CHECKING:  # types only
    from ..scenario import Scenario


def train_spec(scenario: Scenario, compressors: list[dict[str, Any]], plan: CorePlan, *, warmup: int,
               iterations: int, timeout_s: float) -> dict[str, Any]:
    """The worker's ``train`` spec for ``scenario`` with ``plan``'s threads and cores."""
    return {
        "task": "train", "model": scenario.model.name,
        "num_classes": scenario.model.num_classes, "input_size": scenario.model.input_size,
        "batch_size": scenario.batch_size, "seed": scenario.seed,
        "threads": plan.threads, "cpus": plan.cpus, "compressors": compressors,
        "warmup": warmup, "iterations": iterations, "dense_iters": 2, "warmup_comm": False,
        "bucket_cap_bytes": scenario.ddp.bucket_cap,
        "first_bucket_bytes": scenario.ddp.first_bucket,
        "measure_profile": False,  # the prediction's profile is measured before, alone
        "collective_timeout_s": timeout_s,
    }  # fmt: skip


def launch_point(workers: int, rate_bytes_per_s: float | None, delay_s: float,
              spec: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
    """Launch ``workers`` ranks of ``spec``; ``rate_bytes_per_s`` None: loopback, unshaped.
    Returns the ranks' results in rank order."""
    with tempfile.TemporaryDirectory(prefix="rsdgc-emu-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        argv = python_argv("rsdgc_sim.emulate.worker", str(path))
        if rate_bytes_per_s is None:
            return launch(argv, workers, timeout_s=timeout_s, workdir=Path(tmp) / "ranks")
        net = Network(workers, rate_bytes_per_s=rate_bytes_per_s, delay_s=delay_s)
        try:
            net.open()
            return launch(argv, workers, network=net, timeout_s=timeout_s,
                          workdir=Path(tmp) / "ranks")  # fmt: skip
        finally:
            net.close()
