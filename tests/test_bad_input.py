"""Every bad input is one line: a table of hostile scenario files, options and outputs, each
ending in exit code 2, one line on stderr naming the field or the file, no traceback, in
well under 10 s, with nothing written."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml
from click.testing import CliRunner
from helpers import one_line_error

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import OutputError
from rsdgc_sim.yaml_file import MAX_NODES

BASE = """\
model: {name: cnn_small, num_classes: 10, input_size: 16}
batch_size: 4
device: cpu
profile: {warmup: 1, iterations: 1}
compressors: [{name: none}, {name: topk, density: 0.1}]
cluster: {workers: [1, 4], bandwidth: 1Gbit/s}
"""


def _bomb() -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return BASE + "\n".join(lines).replace("a0:", "x0:", 1) + "\n"


#: (scenario text, pattern of the one stderr line)
SCENARIOS = [
    (BASE.replace("batch_size: 4", "batch_size: true"), r"batch_size: Input should be a valid integer \(got True\)"),
    (BASE.replace("workers: [1, 4]", "workers: true"), r"cluster\.workers\[0\]: Input should be a valid integer"),
    (BASE.replace("density: 0.1", "density: true"), r"compressors\[1\]: compressor 'topk': density: Input should be a valid number"),
    (BASE + "batch_size: 8\n", r"key 'batch_size' is given twice \(lines 2 and 7\)"),
    (BASE.replace("name: cnn_small,", "name: cnn_small, name: resnet50,"), r"key 'name' is given twice"),
    (BASE.replace("num_classes: 10", "num_classes: 1000000000000"), r"model\.num_classes: Input should be less than or equal to 100000"),
    (BASE.replace("input_size: 16", "input_size: 1000000"), r"model\.input_size: Input should be less than or equal to 4096"),
    (BASE.replace("batch_size: 4", "batch_size: 1000000000000"), r"batch_size: Input should be less than or equal to 65536"),
    (BASE.replace("workers: [1, 4]", "workers: [1, 1000000000]"), r"cluster\.workers\[1\]: Input should be less than or equal to 65536"),
    (BASE.replace("bandwidth: 1Gbit/s", "bandwidth: 1.0e-320B/s"), r"cluster\.bandwidth\[0\]: Input should be greater than or equal to 1"),
    (BASE.replace("bandwidth: 1Gbit/s", "bandwidth: 1Gbit/s, latency: 1.0e+308s"), r"cluster\.latency\[0\]: Input should be less than or equal to 3600"),
    (BASE.replace("bandwidth: 1Gbit/s", "bandwidth: 1Gbit/s, stragglers: {jitter_sigma: .inf}"), r"jitter_sigma: Input should be a finite number"),
    (BASE.replace("bandwidth: 1Gbit/s", "bandwidth: 1Gbit/s, stragglers: {speed_factors: [1.0e+308]}"), r"speed_factors\[0\]: Input should be less than or equal to"),
    (BASE.replace("bandwidth: 1Gbit/s", "bandwidth: 1Gbit/s, stragglers: {speed_factors: [0, -1]}"), r"speed_factors\[0\]: Input should be greater than 0"),
    (BASE.replace("bandwidth: 1Gbit/s", "bandwidth: 1Gbit/s, stragglers: {seed: 18446744073709551616}"), r"stragglers\.seed: Input should be less than"),
    (BASE + "seed: -1\n", r"seed: Input should be greater than or equal to 0"),
    (BASE + "train: {lr: .inf}\n", r"train\.lr: Input should be a finite number"),
    (BASE + "seed: " + "9" * 5000 + "\n", r"cannot read: .*digits"),
    (BASE + "name: " + "[" * 5000 + "]" * 5000 + "\n", r"nest"),
    (_bomb(), f"expand to more than {MAX_NODES:,}"),
    (BASE + "colour: " + "x" * 100_000 + "\n", r"colour: unknown key; allowed:"),
]


@pytest.mark.parametrize("text, pattern", SCENARIOS, ids=range(len(SCENARIOS)))
def test_bad_scenarios_are_one_line(tmp_path, text, pattern):
    """Wrong types (a bool is not a number), duplicate keys, sizes beyond any machine,
    non-finite or absurd values, alias bombs and pathological YAML: exit 2, one short line
    naming the field, nothing written."""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(out)])
    line = one_line_error(result, pattern, t0)
    assert str(path) in line
    assert not out.exists()


def test_scenario_paths_that_are_not_files(tmp_path):
    """A FIFO (would block), /dev/zero (never ends), a NUL byte, a name over 255
    characters, invalid UTF-8: one line each, at once."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"model: \xff\n")
    for path, pattern in [(fifo, "a FIFO, not a YAML file"), ("/dev/zero", "a device, not a YAML file"),
                          ("a\0b.yaml", "NUL byte"), ("x" * 300 + ".yaml", "unreadable"),
                          (bad, "not UTF-8")]:
        t0 = time.perf_counter()
        one_line_error(CliRunner().invoke(cli, ["run", str(path)]), pattern, t0)


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    return path


def test_outputs_are_checked_before_any_work(tmp_path, scenario, monkeypatch):
    """Outputs that cannot be written fail before profiling, naming the output: `--out` on
    a file or under one, under /proc, a cache folder that is a file, `profile --out` and
    `plot --out` under a file."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("RSDGC_SIM_CACHE", str(tmp_path / "cache"))
    cases = [
        (["run", str(scenario), "--out", "/dev/null"], r"output folder /dev/null: exists and is not a folder"),
        (["run", str(scenario), "--out", str(afile / "sub")], r"output folder .*afile/sub: cannot create it"),
        (["run", str(scenario), "--out", "/proc/rsdgc-x"], r"output folder /proc/rsdgc-x: cannot create it"),
        (["run", str(scenario), "--cache", str(afile)], r"'--cache': Directory .*afile' is a file"),
        (["run", str(scenario), "--cache", str(afile / "c")], r"profile cache .*afile/c/profiles: cannot create it"),
        (["train", str(scenario), "--out", str(afile)], r"'--out': Directory .*afile' is a file"),
        (["train", str(scenario), "--out", str(afile / "sub")], r"output folder .*afile/sub: cannot create it"),
        (["profile", str(scenario), "--out", str(afile / "p.json")], r"folder of the profile file .*afile: exists and is not a folder"),
        (["profile", str(scenario), "--out", str(tmp_path / "p.txt")], r"profile file .*p\.txt: use one of the suffixes \.json"),
    ]
    for args, pattern in cases:
        t0 = time.perf_counter()
        one_line_error(CliRunner().invoke(cli, args), pattern, t0)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.json"))


def _results(tmp_path) -> str:
    rows = [{"compressor": c, "workers": w, "bandwidth_bytes_per_s": 1.25e8, "latency_s": 5e-6,
             "iteration_s": 0.1 * w, "speedup_vs_dense": 1.0} for c in ("none", "topk") for w in (1, 4)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"scenario": {"name": "s"}, "runs": rows}))
    return str(path)


def test_plot_says_what_it_needs(tmp_path):
    """`plot` on a train.json, on rows without bandwidth, on a non-JSON file, or to a
    suffix it cannot write: one line saying what the file is and what `plot` needs."""
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"runs": [{"compressor": "none", "final_accuracy": 0.9}]}))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"runs": [{"compressor": "none", "workers": 1}]}))
    text = tmp_path / "results.csv"
    text.write_text("a,b\n")
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        ([str(train)], r"train\.json: a train\.json .*`plot` draws the results\.json"),
        ([str(rows)], r"rows\.json: run 0 has no bandwidth_bytes_per_s"),
        ([str(text)], r"results\.csv: not a results\.json"),
        ([_results(tmp_path), "--out", str(tmp_path / "p.pdf")], r"p\.pdf: use one of the suffixes \.png, \.svg"),
        ([_results(tmp_path), "--out", str(afile / "p.png")], r"folder of the plot .*afile: exists and is not a folder"),
    ]
    for args, pattern in cases:
        t0 = time.perf_counter()
        one_line_error(CliRunner().invoke(cli, ["plot", *args]), pattern, t0)


def test_plot_honours_the_suffix(tmp_path):
    """`plot --out x.svg` writes SVG, `--out x.png` PNG."""
    res = _results(tmp_path)
    for name, magic in (("p.svg", b"<?xml"), ("p.png", b"\x89PNG")):
        r = CliRunner().invoke(cli, ["plot", res, "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        assert (tmp_path / name).read_bytes().startswith(magic)


def test_model_that_cannot_fit_is_refused_before_profiling(tmp_path, monkeypatch):
    """A model whose profile would need more memory than the machine has (VGG-19 at 4096 px,
    batch 4096) is refused with the estimate, before anything is allocated."""
    monkeypatch.setenv("RSDGC_SIM_CACHE", str(tmp_path / "cache"))
    data = yaml.safe_load(BASE)
    data["model"] = {"name": "vgg19", "num_classes": 10, "input_size": 4096}
    data["batch_size"] = 4096
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    t0 = time.perf_counter()
    line = one_line_error(CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "o")]),
                  r"profiling vgg19 .* needs about [\d.]+ GiB of memory; this machine has", t0)
    assert "lower batch_size" in line


@pytest.mark.parametrize("section, update, pattern", [
    ("profile", {"file": ""}, r"s\.yaml: profile\.file: String should have at least 1 character"),
    ("cluster", {"calibration": ""}, r"s\.yaml: cluster\.calibration: String should have at least 1"),
    ("sweep", {"a" * 10_000: [1]}, r"s\.yaml: sweep: 'aaaa.*\.\.\. \(10,000 characters\) is not a "
                                   r"path of this scenario"),
    ("sweep", {"compressors.0." + "c" * 10_000: [1]}, r"sweep: 'compressors\.0\.ccc.*\(10,014 characters\)"),
])
def test_empty_paths_and_huge_sweep_paths_are_named_not_dumped(tiny, tmp_path, section, update,
                                                                pattern):
    """An empty path field names the field (not ``.: a directory``); a 10 KB sweep path is
    refused in one short line (it is not echoed in full)."""
    data = dict(tiny)
    data[section] = {**(data.get(section) or {}), **update}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    t0 = time.perf_counter()
    one_line_error(CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out",
                                            str(tmp_path / "o")]), pattern, t0)


def _remove_chain(deep, top) -> None:
    """Remove a chain of empty folders bottom up (shutil.rmtree recurses once per level:
    pytest could not clean this tmp_path up)."""
    while deep != top:
        if deep.is_dir():
            os.rmdir(deep)
        deep = deep.parent


def test_an_output_folder_thousands_of_levels_deep(tmp_path, request):
    """--out 2,000 folders deep (a valid path: pathlib's recursive mkdir overflowed Python's
    stack): made level by level, and a message about it names the path in short."""
    from rsdgc_sim.files import check_writable_dir, shown

    deep = tmp_path.joinpath(*(["d"] * 2000))
    request.addfinalizer(lambda: _remove_chain(deep, tmp_path))
    assert check_writable_dir(deep) == deep and deep.is_dir()
    text = shown(deep)
    assert len(text) < 200 and text.endswith(f"({len(str(deep)):,} characters)")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"cannot create it: Not a directory") as e:
        check_writable_dir(tmp_path.joinpath("f", *(["d"] * 2000)))
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("device, pattern", [
    ({"peak_flops": "1e-300", "memory_bandwidth": "1TB/s"},
     r"device\.peak_flops: Input should be greater than or equal to 1000000"),
    ({"peak_flops": "5e19", "memory_bandwidth": "1TB/s"}, r"device\.peak_flops: .*less than or equal"),
    ({"peak_flops": "50TFLOP/s", "memory_bandwidth": "1e-300"}, r"device\.memory_bandwidth: "),
    ({"peak_flops": "50TFLOP/s", "memory_bandwidth": "1TB/s", "op_overhead": "1h"},
     r"device\.op_overhead: "),
    ({"cpu": {"cores": 100_000_000, "gflops_per_core": 1e6, "memory_bandwidth": "1TB/s"}},
     r"device\.cpu: 100000000 cores x 1e\+06 GFLOP/s is 1e\+23 FLOP/s, outside 1e\+06 to 1e\+19"),
])
def test_device_models_outside_any_real_device_are_refused_at_load(tiny, tmp_path, device,
                                                                   pattern):
    """A device model whose estimate would overflow (1e-300 FLOP/s made a pydantic traceback
    from the profile's one-day bound) is one line at load naming the field."""
    data = dict(tiny, device=device)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    t0 = time.perf_counter()
    one_line_error(CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out",
                                            str(tmp_path / "o")]), pattern, t0)


def test_an_estimate_beyond_a_day_per_iteration_is_one_line(tiny, tmp_path):
    """A valid but very slow device model: the estimate says how long an iteration would
    take and what to change (the profile's one-day bound used to be a pydantic traceback)."""
    data = dict(tiny, device={"peak_flops": "1MFLOP/s", "memory_bandwidth": "1MB/s"},
                batch_size=8192)
    data["model"] = {**data["model"], "input_size": 64}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    t0 = time.perf_counter()
    one_line_error(CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out",
                                            str(tmp_path / "o"), "-q"]),
                   r"cnn_small \(batch 8192\) on custom: the estimate is .* s per iteration, more "
                   r"than the profile's limit of 86400 s", t0, limit_s=30)
