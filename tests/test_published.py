"""Published measurements (benchmarks/data/published.yaml) and the device models' efficiency
factors fitted on them: the data file's strict schema, the benchmark's error arithmetic
(exact values on hand-made cases) and the factors' place in the roofline. No network, no
step counting."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rsdgc_sim.errors import ConfigError
from rsdgc_sim.profile.device_models import DeviceModel, device_model, device_table

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("published_bench", ROOT / "benchmarks" / "published.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("published_bench", mod)
    spec.loader.exec_module(mod)
    return mod


pub = _bench()


# ----------------------------------------------------------------------------- the data file

def test_data_file_loads_with_sources_and_enough_cases():
    d = pub.load()
    assert all(c.source.startswith("https://") for c in d.nccl_tests + d.throughput)
    four = [c for c in d.nccl_tests if len(c.rows) >= 4]
    assert len(four) >= 10  # issue 22's acceptance: 10 nccl-tests cases of 4+ sizes
    compared = [c for c in d.throughput if c.role != "reference"]
    assert len(compared) >= 5
    assert {c.role for c in d.throughput} >= {"fit", "held_out"}
    # every device a throughput case names is in the device table
    assert all(device_table().lookup(c.device) for c in d.throughput)
    assert all(c.reason for c in d.left_out)


def _minimal() -> dict:
    return {
        "schema_version": 1,
        "nccl_tests": [{
            "id": "a", "source": "https://example.org/a", "what": "x",
            "collective": "all_reduce", "placement": "out_of_place",
            "hardware": {"gpu": "g", "nodes": 1, "gpus_per_node": 8, "intra_node": "nvswitch",
                         "nics": "none"},
            "setup": {"topology": {"preset": "dgx_a100"}},
            "rows": [[1024, 10.0, 0.1, 0.2], [2048, 11.0, 0.2, 0.3]],
        }],
        "throughput": [{
            "id": "t", "role": "held_out", "framework": "pytorch", "model": "resnet50",
            "input_size": 224, "precision": "fp32", "device": "V100", "gpus": 1,
            "batch_per_gpu": 112, "images_per_s": 367, "source": "https://example.org/t",
        }],
    }


def _load_dict(tmp_path, d) -> object:
    import yaml

    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(d))
    return pub.load(p)


def test_minimal_file_loads(tmp_path):
    d = _load_dict(tmp_path, _minimal())
    assert d.nccl_tests[0].ranks == 8 and d.throughput[0].per_gpu == 367


@pytest.mark.parametrize("change, says", [
    (lambda d: d["nccl_tests"][0].update(extra=1), "extra"),
    (lambda d: d["nccl_tests"][0].update(source="example.org/a"), "https://"),
    (lambda d: d["throughput"][0].update(source="http://x"), "https://"),
    (lambda d: d["nccl_tests"][0].update(rows=[[2048, 1.0, 1.0, 1.0], [1024, 1.0, 1.0, 1.0]]),
     "increasing"),
    (lambda d: d["throughput"][0].update(precision="amp"), "reference"),
    (lambda d: d["throughput"][0].update(role="fit", gpus=8), "one-GPU"),
    (lambda d: d["nccl_tests"][0]["hardware"].update(nodes=2), "nic_source"),
    (lambda d: d["throughput"].append(dict(d["throughput"][0])), "duplicate"),
])
def test_bad_files_are_refused(tmp_path, change, says):
    d = _minimal()
    change(d)
    with pytest.raises(ConfigError, match=says):
        _load_dict(tmp_path, d)


# ----------------------------------------------------------------------------- arithmetic

def test_error_and_summary_exact():
    assert pub.error(3.0, 2.0) == 0.5
    assert pub.error(1.0, 4.0) == -0.75
    assert pub.error(1.0, 0.0) is None  # a printed 0.00 busbw: nothing to compare
    s = pub.summary([0.5, -0.25, None, 0.125])
    assert s == {"n": 3, "median": 0.25, "worst": 0.5}
    assert pub.summary([None]) == {"n": 0, "median": None, "worst": None}


def test_busbw_is_nccl_tests_definition():
    # allreduce: 2 (p-1)/p * size / t; all-gather: (p-1)/p * size / t
    assert pub.busbw("all_reduce", 4, 1e9, 1.5) == 1e9
    assert pub.busbw("all_gather", 4, 8.0, 2.0) == 3.0
    assert pub.busbw("all_reduce", 2, 6.0, 3.0) == 2.0


def test_images_and_bisect():
    assert pub.images_per_gpu(256, 0.5) == 512.0
    root = pub.bisect(lambda x: 0.25 / x - 1.0, 1e-3, 1.0)  # 0.25 / x = 1 at x = 0.25
    assert root == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ValueError, match="no root"):
        pub.bisect(lambda x: 1.0 + x, 0.0, 1.0)


# ----------------------------------------------------------------------------- the factors

def _dev(**kw) -> DeviceModel:
    base = dict(name="d", peak_flops=1e12, conv_peak_flops=4e12, memory_bandwidth=1e11,
                efficiency=0.5, op_overhead=0.0)
    return DeviceModel(**(base | kw))


def test_factors_default_to_efficiency():
    d = _dev()
    assert (d.conv_e, d.memory_e) == (0.5, 0.5)
    d = _dev(conv_efficiency=0.25, memory_efficiency=0.8)
    assert (d.conv_e, d.memory_e) == (0.25, 0.8)
    assert d.describe() == "d (roofline, efficiency 0.5, conv 0.25, memory 0.8)"


def test_roofline_uses_the_factor_of_each_op_class():
    from rsdgc_sim.profile.roofline import Traffic, op_seconds

    d = _dev(conv_efficiency=0.25, memory_efficiency=0.8)

    def op(flops, nbytes, conv):
        return SimpleNamespace(launched=True, conv=conv, flops=flops, bytes=nbytes, fresh=0)

    # conv, compute-bound: 4e9 / (4e12 * 0.25) = 4 ms (memory 8e7 / (1e11 * 0.8) = 1 ms)
    assert op_seconds(op(4e9, 8e7, True), d) == pytest.approx(4e-3, rel=1e-12)
    # conv, memory-bound: 8e8 / (1e11 * 0.8) = 10 ms beats 4e9 / 1e12 = 4 ms
    assert op_seconds(op(4e9, 8e8, True), d) == pytest.approx(1e-2, rel=1e-12)
    # other op: plain peak at plain efficiency: 1e9 / (1e12 * 0.5) = 2 ms
    assert op_seconds(op(1e9, 8e7, False), d) == pytest.approx(2e-3, rel=1e-12)
    # a compressor's traffic: bytes at the memory efficiency, 4e8 / (1e11 * 0.8) = 5 ms
    assert Traffic(bytes=4e8, ops=1).seconds(d) == pytest.approx(5e-3, rel=1e-12)
    # without the factors, everything at 0.5: 4e9 / 2e12 = 2 ms; 4e8 / 5e10 = 8 ms
    plain = _dev()
    assert op_seconds(op(4e9, 8e7, True), plain) == pytest.approx(2e-3, rel=1e-12)
    assert Traffic(bytes=4e8, ops=1).seconds(plain) == pytest.approx(8e-3, rel=1e-12)


def test_table_factors_are_cited_and_a_scenario_efficiency_replaces_them():
    v = device_model({"model": "V100"})
    assert v.conv_efficiency is not None and v.memory_efficiency is not None
    entry = device_table().lookup("V100")[1]
    assert "published" in entry.calibration and "pt_dgx1_16g_fp32_1" in entry.calibration
    own = device_model({"model": "V100", "efficiency": 0.6})
    assert (own.conv_e, own.memory_e, own.efficiency) == (0.6, 0.6, 0.6)
    # devices without published calibration are unchanged (and the CPU form has none)
    h = device_model({"model": "H100-SXM"})
    assert (h.conv_efficiency, h.memory_efficiency) == (None, None)
    cpu = device_model({"cpu": {"cores": 2, "gflops_per_core": 100, "memory_bandwidth": "20GB/s"}})
    assert (cpu.conv_e, cpu.memory_e) == (cpu.efficiency, cpu.efficiency)


def test_factors_without_calibration_are_refused():
    from rsdgc_sim.profile.device_models import TableEntry

    base = dict(kind="gpu", fp32="10TFLOP/s", memory_bandwidth="1TB/s", efficiency=0.5,
                op_overhead="5us", source="s")
    TableEntry.model_validate(base)
    with pytest.raises(Exception, match="calibration"):
        TableEntry.model_validate(base | {"conv_efficiency": 0.3})


def test_nccl_estimates_say_what_nccl_chose():
    """Each estimated row carries NCCL's choice (algorithm/protocol) for the table's
    "chosen / why" column: the 3 x 8 A100 case takes the ring, one DGX A100 LL for 1 KiB
    and Simple for 8 GiB; the Azure H100 run forced NVLS (NCCL_ALGO=NVLS, as its source
    says), so every size goes by nvls."""
    d = pub.load()
    cases = {c.id: c for c in d.nccl_tests}
    rows = pub.nccl_estimates(cases["a100_ib_3x8"], lambda _: None)
    assert [r["chosen"] for r in rows] == ["ring/simple"] * len(rows)
    rows = pub.nccl_estimates(cases["azure_nda100v4_1x8"], lambda _: None)
    assert rows[-1]["chosen"] == "ring/simple" and rows[0]["chosen"].endswith("/ll")
    assert cases["azure_ndh100v5_1x8"].setup.collective == {"algorithm": "nvls"}
    rows = pub.nccl_estimates(cases["azure_ndh100v5_1x8"], lambda _: None)
    assert {r["chosen"] for r in rows} == {"nvls/simple"}


def test_cases_not_counted_are_summed_apart():
    """A case with a not_counted reason is left out of the acceptance summary (and summed
    apart); exact medians and worsts on hand-made cases."""
    big = pub.LARGE_BYTES

    def case(cid, errors, why=""):
        return {"id": cid, "not_counted": why,
                "rows": [{"size": big, "error": e} for e in errors]
                + [{"size": big - 1, "error": 9.0}]}  # below 8 MB: never in these

    cases = [case("a", [0.1, -0.3]), case("b", [0.2]), case("c", [4.0, -1.0], "why")]
    assert pub.counted_summary(cases) == {"n": 3, "median": 0.2, "worst": 0.3}
    assert pub.counted_summary(cases, False) == {"n": 2, "median": 2.5, "worst": 4.0}
    assert pub.counted_summary(cases, None) == {"n": 5, "median": 0.3, "worst": 4.0}


def test_data_file_counts_all_but_two_cases_and_says_why():
    """Only the GCP run (its tuner plugin's configuration is not public) and the EKS run
    (not a steady measurement) are left out of the acceptance summary, each with its
    reason; every other case is counted."""
    d = pub.load()
    apart = {c.id: c.not_counted for c in d.nccl_tests if c.not_counted}
    assert set(apart) == {"gcp_a3mega_2x8", "aws_p5_2x8_eks"}
    assert "a3plus_tuner_config" in apart["gcp_a3mega_2x8"]
    assert "steady" in apart["aws_p5_2x8_eks"]
