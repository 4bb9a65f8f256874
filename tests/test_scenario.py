"""Scenario files: strict validation with errors that name the field's path."""

from pathlib import Path

import pytest

from rsdgc_sim.errors import ConfigError, ScenarioFileError, UnknownNameError
from rsdgc_sim.scenario import bundled_path, load_scenario, scenario_from_dict


def test_bundled_quickstart_loads_with_units_converted():
    """The shipped quickstart is valid; units are SI after loading and lists form the grid."""
    sc = load_scenario()
    assert sc.name == "quickstart"
    assert sc.cluster.bandwidth == [1.25e8, 1.25e9]
    assert sc.cluster.latency == [5e-6]
    assert sc.ddp.bucket_cap == 26214400 and sc.ddp.first_bucket == 1048576
    assert [c.key for c in sc.compressors] == ["none", "topk(density=0.01)", "nsi(density=0.01)"]
    assert len(sc.grid()) == 3 * 2


def test_scenarios_folder_has_the_bundled_quickstart():
    """scenarios/quickstart.yaml (used by `make run`) is the file shipped in the package."""
    repo = Path(__file__).resolve().parents[1]
    assert (repo / "scenarios" / "quickstart.yaml").read_text() == bundled_path().read_text()


def test_scalars_become_one_point_axes(tiny):
    """A scalar workers/bandwidth/latency is a one-element list; the grid is their product."""
    tiny["cluster"].update(workers=8, bandwidth="10Gbit/s", latency=["1us", "10us"])
    sc = scenario_from_dict(tiny)
    assert [(p.workers, p.bandwidth_bytes_per_s, p.latency_s) for p in sc.grid()] == [
        (8, 1.25e9, 1e-6), (8, 1.25e9, 1e-5)]


def test_sim_point_carries_cluster_and_ddp(tiny):
    """A SimPoint for a label and grid point has the converted values of the scenario."""
    sc = scenario_from_dict(tiny)
    pt = sc.sim_point("topk(density=0.1)", sc.grid()[-1])
    assert (pt.workers, pt.bandwidth_bytes_per_s, pt.latency_s) == (4, 1.25e9, 5e-6)
    assert pt.ddp.bucket_cap_bytes == 26214400 and pt.ddp.overlap is True
    assert pt.topology.name == "switch"


def test_compressor_params_and_labels(tiny):
    """Extra keys of a compressor entry are its parameters; `label` overrides the table name."""
    tiny["compressors"].append({"name": "topk", "density": 0.5, "label": "topk-half"})
    sc = scenario_from_dict(tiny)
    assert sc.compressor_specs()["topk-half"] == {"name": "topk", "density": 0.5}


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.update(colour="red"), r"colour: unknown key; allowed: schema_version, name, model"),
        (lambda d: d["cluster"].update(bandwith="1Gbit/s"), r"cluster\.bandwith: unknown key; allowed: workers, topology, bandwidth"),
        (lambda d: d["ddp"].update(overlap="maybe"), r"ddp\.overlap: Input should be a valid boolean"),
        (lambda d: d.update(batch_size="eight"), r"batch_size: Input should be a valid integer"),
        (lambda d: d.update(batch_size=True), r"batch_size: Input should be a valid integer \(got True\)"),
        (lambda d: d.update(batch_size=8.0), r"batch_size: Input should be a valid integer \(got 8\.0\)"),
        (lambda d: d["cluster"].update(workers=True), r"cluster\.workers\[0\]: Input should be a valid integer \(got True\)"),
        (lambda d: d["model"].update(num_classes="1e12"), r"model\.num_classes: Input should be a valid integer"),
        (lambda d: d["train"].update(lr=True), r"train\.lr: Input should be a valid number \(got True\)"),
        (lambda d: d["compressors"][1].update(density=True), r"compressors\[1\]: compressor 'topk': density: Input should be a valid number"),
        (lambda d: d["cluster"].update(bandwidth=["1Gbit/s", "10 Gfoo"]), r"cluster\.bandwidth\[1\]: cannot read '10 Gfoo'; expected .*Gbit/s"),
        (lambda d: d["cluster"].update(latency="5 parsecs"), r"cluster\.latency\[0\]: cannot read '5 parsecs'"),
        (lambda d: d["ddp"].update(bucket_cap="25MiB/s"), r"ddp\.bucket_cap: cannot read"),
        (lambda d: d.update(compressors=[]), r"compressors: List should have at least 1 item"),
        (lambda d: d["cluster"].update(workers=[4, 0]), r"cluster\.workers\[1\]: Input should be greater than or equal to 1"),
        (lambda d: d["cluster"].update(bandwidth="0bit/s"), r"cluster\.bandwidth\[0\]: Input should be greater than or equal to 1"),
        (lambda d: d["cluster"].update(bandwidth="1e-320B/s"), r"cluster\.bandwidth\[0\]: Input should be greater than or equal to 1"),
        (lambda d: d["cluster"].update(bandwidth=float("inf")), r"cluster\.bandwidth\[0\]: cannot read inf"),
        (lambda d: d["cluster"].update(bandwidth="1e16B/s"), r"cluster\.bandwidth\[0\]: Input should be less than or equal to 1000000000000000 "),
        (lambda d: d["cluster"].update(latency="1e308s"), r"cluster\.latency\[0\]: Input should be less than or equal to 3600"),
        (lambda d: d["cluster"].update(stragglers={"speed_factors": [0, -1]}), r"cluster\.stragglers\.speed_factors\[0\]: Input should be greater than 0"),
        (lambda d: d["cluster"].update(stragglers={"speed_factors": [1e308]}), r"cluster\.stragglers\.speed_factors\[0\]: Input should be less than or equal to"),
        (lambda d: d["cluster"].update(stragglers={"jitter_sigma": float("inf")}), r"cluster\.stragglers\.jitter_sigma: Input should be a finite number"),
        (lambda d: d["cluster"].update(stragglers={"seed": -1}), r"cluster\.stragglers\.seed: Input should be greater than or equal to 0"),
        (lambda d: d.update(compressors=[{"name": "topk", "label": "none"}]), r"compressors\[0\]: label 'none' is kept for the dense baseline"),
        (lambda d: d.pop("model"), r"model: required field is missing"),
        (lambda d: d.update(schema_version=2), r"schema_version: Input should be 1"),
        (lambda d: d["compressors"].append({"name": "topk", "density": 0.1}), r"compressors\[2\]: label 'topk\(density=0\.1\)' used twice"),
    ],
)
def test_bad_fields_name_their_path(tiny, mutate, pattern):
    """Each mistake is one ConfigError naming the source, the field path and the reason; a
    bool or a float is not an integer, a bool is not a number."""
    tiny.setdefault("train", {})
    mutate(tiny)
    with pytest.raises(ConfigError, match=r"^my\.yaml: " + pattern):
        scenario_from_dict(tiny, source="my.yaml")


def test_unknown_model_lists_choices(tiny):
    """An unknown model name is an error listing the zoo."""
    tiny["model"]["name"] = "alexnet"
    with pytest.raises(UnknownNameError, match=r"model\.name: unknown model 'alexnet'; choose one of: cnn_small, .*resnet18.*vgg19_bn"):
        scenario_from_dict(tiny)


def test_unknown_compressor_lists_choices(tiny):
    """An unknown compressor name is an error naming its entry and listing the compressors."""
    tiny["compressors"][1]["name"] = "zip"
    with pytest.raises(UnknownNameError, match=r"compressors\[1\]: unknown compressor 'zip'; choose one of: .*nsi.*topk"):
        scenario_from_dict(tiny)


@pytest.mark.parametrize("density", [0, 1.5, -0.1])
def test_density_outside_unit_interval(tiny, density):
    """density must lie in (0, 1]; the error names the entry and the value."""
    tiny["compressors"][1]["density"] = density
    with pytest.raises(ConfigError, match=r"compressors\[1\]: .*density"):
        scenario_from_dict(tiny)


def test_unknown_compressor_parameter(tiny):
    """A parameter the compressor does not take is an error."""
    tiny["compressors"][1]["kernal"] = 3
    with pytest.raises(ConfigError, match=r"compressors\[1\]: .*kernal"):
        scenario_from_dict(tiny)


def test_unknown_topology_lists_choices(tiny):
    """An unknown topology is an error listing the topologies."""
    tiny["cluster"]["topology"] = {"name": "hypercube9"}
    with pytest.raises(UnknownNameError, match=r"cluster\.topology\.name: unknown topology 'hypercube9'; choose one of: .*switch"):
        scenario_from_dict(tiny)


def test_unknown_collective_lists_choices(tiny):
    """An unknown collective is an error listing the collectives."""
    tiny["cluster"]["collective"] = "butterfly"
    with pytest.raises(UnknownNameError, match=r"cluster\.collective: unknown collective 'butterfly'; choose one of: .*ring"):
        scenario_from_dict(tiny)


def test_missing_file():
    """A missing file is a ScenarioFileError naming it."""
    with pytest.raises(ScenarioFileError, match=r"nope\.yaml: no such file"):
        load_scenario("nope.yaml")


def test_directory_instead_of_file(tmp_path):
    """A folder is not a scenario."""
    with pytest.raises(ScenarioFileError, match="a directory, not a YAML file"):
        load_scenario(tmp_path)


def test_invalid_yaml_says_where(write_scenario):
    """Broken YAML is reported with its line and column."""
    p = write_scenario("name: x\nmodel: {name: [\n")
    with pytest.raises(ScenarioFileError, match=r"invalid YAML at line \d+, column \d+"):
        load_scenario(p)


def test_top_level_must_be_mapping(write_scenario):
    """A YAML list or scalar at the top is rejected."""
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_scenario(write_scenario("- a\n- b\n"))


def test_unreadable_file(write_scenario):
    """Bytes that are not UTF-8 are a clear error, not a traceback."""
    p = write_scenario("x")
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ScenarioFileError, match="not UTF-8"):
        load_scenario(p)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml")))
def test_every_shipped_scenario_is_valid(path):
    """Every scenario under scenarios/ loads (names, parameters and units all check out)."""
    assert load_scenario(path).grid()


def test_workers_that_do_not_fit_the_topology(tiny):
    """10 workers on two_level with 8 GPUs per node (no partial nodes) fail at load, naming
    the field, before any profiling."""
    tiny["cluster"].update(workers=[8, 10], topology={"name": "two_level", "gpus_per_node": 8})
    with pytest.raises(ConfigError, match=r"cluster\.topology \(10 workers\): .*8"):
        scenario_from_dict(tiny)


def test_topology_parameter_checked_at_load(tiny):
    """A parameter the topology generator does not take is an error at load."""
    tiny["cluster"]["topology"] = {"name": "switch", "radix": 4}
    with pytest.raises(ConfigError, match=r"cluster\.topology \(1 workers\): .*radix"):
        scenario_from_dict(tiny)


def test_collective_params_checked_at_load(tiny):
    """Unknown collective parameters are an error naming collective_params."""
    tiny["cluster"].update(collective="ring", collective_params={"chunkz": 4})
    with pytest.raises(ConfigError, match=r"cluster\.collective_params: .*chunkz"):
        scenario_from_dict(tiny)


def test_dense_baseline_is_chosen_by_compressor_name(tiny):
    """The dense reference is the scenario's `none` compressor whatever its label, and
    `none` is added when the scenario has none."""
    tiny["compressors"] = [{"name": "none", "label": "dense"}, {"name": "topk"}]
    assert scenario_from_dict(tiny).dense_label() == "dense"
    tiny["compressors"] = [{"name": "topk"}]
    assert scenario_from_dict(tiny).dense_label() == "none"


def test_relative_paths_resolve_against_the_scenario(tmp_path, tiny):
    """A topology file and a calibration file named relatively in a scenario are read from
    the scenario's folder, wherever the command runs."""
    import os

    import yaml

    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "t.yaml").write_text(yaml.safe_dump({
        "hosts": ["a", "b"], "switches": ["s"],
        "links": [{"between": ["a", "s"]}, {"between": ["b", "s"]}]}))
    tiny["cluster"].update(workers=[2], topology={"name": "t.yaml"})
    (tmp_path / "lab" / "s.yaml").write_text(yaml.safe_dump(tiny))
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        sc = load_scenario(tmp_path / "lab" / "s.yaml")
    finally:
        os.chdir(cwd)
    assert sc.cluster.topology.name == str(tmp_path / "lab" / "t.yaml")


@pytest.mark.parametrize("path, value, field", [
    ("cluster.calibration", "a\0b.json", "cluster.calibration"),
    ("cluster.topology", {"name": "t\0.yaml"}, "cluster.topology.name"),
    ("train", {"dataset": "/data\0x"}, "train.dataset"),
    ("train", {"dataset": "fashion_mnist", "data_dir": "d\0"}, "train.data_dir"),
    ("profile", {"file": "p\0.json"}, "profile.file"),
])
def test_a_path_with_a_nul_byte_is_refused_by_field(path, value, field):
    """A file or folder path holding a NUL byte (no file system can hold one; resolving it
    was a ValueError traceback) is one ConfigError naming the field and the source."""
    import yaml

    data = yaml.safe_load(bundled_path("quickstart").read_text())
    section, _, key = path.partition(".")
    if key:
        data[section][key] = value
    else:
        data[section] = value
    with pytest.raises(ConfigError, match=rf"^src: {field}: '.*\\x00.*' is not a path "
                                          r"\(it holds a NUL byte\)$"):
        scenario_from_dict(data, source="src")
