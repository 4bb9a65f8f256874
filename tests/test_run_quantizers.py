"""The quantizers through a whole study: ``rsdgc-sim list`` names them, a scenario with
all three runs on a measured and on an estimated profile, every worker sends the closed
form of its tensors to the byte, by all-gather."""

from __future__ import annotations

import copy
import math

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.orchestrate import run_scenario
from tests.conftest import TINY

SPECS = [{"name": "qsgd"}, {"name": "qsgd", "levels": 5}, {"name": "terngrad"},
         {"name": "efsignsgd"}]


def _bits(spec: dict) -> int:
    """Bits per element from the issue's formulas."""
    if spec["name"] == "qsgd":
        return 1 + math.ceil(math.log2(spec.get("levels", 16) + 1))
    return {"terngrad": 2, "efsignsgd": 1}[spec["name"]]


def test_list_names_the_quantizers():
    """``rsdgc-sim list`` has a row for each quantizer."""
    import json

    out = CliRunner().invoke(cli, ["list", "--json"]).output
    names = {c["name"] for c in json.loads(out)["compressors"]}
    assert {"qsgd", "terngrad", "efsignsgd", "powersgd"} <= names


@pytest.mark.parametrize("device", ["cpu", {"model": "V100"}], ids=["measured", "estimated"])
def test_bytes_sent_are_the_closed_forms_by_allgather(device):
    """At 4 workers every quantizer's ``bytes_sent_per_worker`` is the sum over the
    profile's tensors of ``ceil(numel * bits / 8) + 4``, exactly, and its collective is an
    all-gather; dense ``none`` keeps its allreduce."""
    data = copy.deepcopy(TINY)
    data["device"] = device
    data["profile"] = {"warmup": 0, "iterations": 1}  # bytes are exact; times need not be
    data["model"]["input_size"] = 8
    data["compressors"] = [{"name": "none"}, *SPECS]
    data["cluster"]["workers"] = [4]
    data["cluster"]["bandwidth"] = ["1Gbit/s"]
    study = run_scenario(scenario_from_dict(data))
    numels = [t.numel for t in study.profile.tensors]
    assert len(numels) >= 6 and any(n % 8 for n in numels)
    rows = {r["compressor"]: r for r in study.runs}
    assert not rows["none"]["collective"].startswith("allgather")
    labels = ["qsgd", "qsgd(levels=5)", "terngrad", "efsignsgd"]
    for label, spec in zip(labels, SPECS, strict=True):
        want = sum(math.ceil(n * _bits(spec) / 8) + 4 for n in numels)
        assert rows[label]["bytes_sent_per_worker"] == want, label
        assert rows[label]["collective"].startswith("allgather"), rows[label]["collective"]
