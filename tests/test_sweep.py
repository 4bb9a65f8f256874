"""Sweeps over any scenario field: expansion into validated variants, and every bad input
named at load (nearest valid path, wrong value type, empty list)."""

from __future__ import annotations

import itertools
import time

import pytest
import yaml
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.scenario import load_scenario, scenario_from_dict
from rsdgc_sim.scenario.sweep import expand_sweep, split_path
from tests.helpers import one_line_error


def _with_sweep(tiny: dict, sweep: dict) -> dict:
    tiny["sweep"] = sweep
    return tiny


def test_split_path_turns_indices_into_integers():
    """``compressors.1.density`` -> field, list index, field."""
    assert split_path("compressors.1.density") == ["compressors", 1, "density"]
    assert split_path("cluster.topology.name") == ["cluster", "topology", "name"]


def test_no_sweep_is_its_own_only_variant(tiny):
    """A scenario without `sweep` expands to itself, with no swept values."""
    sc = scenario_from_dict(tiny)
    (v,) = expand_sweep(sc)
    assert v.values == {} and v.scenario is sc


def test_product_of_the_swept_values_first_path_slowest(tiny):
    """Two paths of 2 and 3 values give 6 variants in product order, each with its values
    set in its scenario (a topology name, a compressor parameter by list index)."""
    sc = scenario_from_dict(_with_sweep(tiny, {
        "cluster.topology.name": ["switch", "ring"],
        "compressors.1.density": [0.1, 0.01, 0.001]}))
    vs = expand_sweep(sc)
    assert [tuple(v.values.values()) for v in vs] == [
        ("switch", 0.1), ("switch", 0.01), ("switch", 0.001),
        ("ring", 0.1), ("ring", 0.01), ("ring", 0.001)]
    for v in vs:
        assert v.scenario.cluster.topology.name == v.values["cluster.topology.name"]
        assert v.scenario.compressors[1].params == {"density": v.values["compressors.1.density"]}
        assert v.scenario.compressors[0].name == "none"  # the other entries untouched
        assert v.scenario.sweep == {}
        assert v.scenario.cluster.workers == [1, 4]  # the grid stays inside every variant


def test_list_values_whole_sections_and_new_parameters(tiny):
    """A value may be a list (straggler speed factors), a whole section (a topology with its
    parameters), or a compressor parameter the scenario did not set yet."""
    sc = scenario_from_dict(_with_sweep(tiny, {
        "cluster.stragglers.speed_factors": [[1], [1, 2]],
        "cluster.topology": [{"name": "switch"}, {"name": "fat_tree", "k": 4}],
        "compressors.1.error_feedback": [False],
        "batch_size": [8]}))
    vs = expand_sweep(sc)
    assert len(vs) == 4
    assert [v.scenario.cluster.stragglers.speed_factors for v in vs] == [[1.0]] * 2 + [[1.0, 2.0]] * 2
    assert vs[1].scenario.cluster.topology.spec().params == {"k": 4}
    assert all(v.scenario.compressors[1].params == {"density": 0.1, "error_feedback": False}
               for v in vs)
    assert all(v.scenario.batch_size == 8 for v in vs)
    assert sc.batch_size == 4  # the base scenario is not changed


@pytest.mark.parametrize(("sweep", "message"), [
    ({"cluster.topolgy.name": ["ring"]},
     r"sweep: 'cluster.topolgy.name' is not a field of this scenario; nearest valid path: "
     r"cluster.topology.name$"),
    ({"model.nmae": ["resnet18"]}, r"nearest valid path: model.name$"),
    ({"compressors.5.density": [0.1]},
     r"'compressors.5.density' indexes past the end of compressors \(2 entries\); nearest "
     r"valid path: compressors.1.density$"),
    ({"compressors.first.density": [0.1]}, r"needs a list index \(0 to 1\) after compressors"),
    ({"batch_size.value": [4]}, r"goes inside batch_size, which is a value \(4\)"),
    ({"ddp.overlap.x": [True]}, r"goes inside ddp.overlap"),
    ({"cluster.workers": [[1, 2]]}, r"'cluster.workers' is already a grid axis: list its values "
                                    r"in cluster.workers instead"),
    ({"cluster.bandwidth.0": ["1Gbit/s"]}, r"already a grid axis"),
    ({"batch_size": ["eight"]},
     r"sweep point batch_size='eight': batch_size: Input should be a valid integer"),
    ({"batch_size": [4, 0]}, r"sweep point batch_size=0: batch_size: Input should be greater "
                             r"than or equal to 1"),
    ({"compressors.1.density": [0.1, "dense"]},
     r"sweep point compressors.1.density='dense': compressors\[1\]: compressor 'topk': density"),
    ({"cluster.topology.name": ["switch", "hypercube"]},
     r"sweep point cluster.topology.name='hypercube': cluster.topology.name: unknown topology "
     r"'hypercube'"),
    ({"batch_size": []}, r"sweep.batch_size: List should have at least 1 item"),
    ({"batch_size": 8}, r"sweep.batch_size: Input should be a valid list"),
    ({"": [1]}, r"is not a dotted path"),
    ({"compressors.1.densty": [0.1]},  # a compressor's parameters are its own to name
     r"sweep point compressors.1.densty=0.1: compressors\[1\]: compressor 'topk': unknown "
     r"parameter 'densty'; parameters: density"),
])
def test_bad_sweeps_are_named_at_load(tiny, sweep, message):
    """A bad path names the nearest valid one; a wrong value names the point and the field;
    an empty list or a scalar is refused: all at load, as one ConfigError."""
    with pytest.raises(ConfigError, match=message):
        scenario_from_dict(_with_sweep(tiny, sweep), source="s.yaml")


def test_every_point_is_validated_not_only_the_first(tiny):
    """A point that only fails with some grid values (64 workers do not fit a k=4 fat tree)
    is found at load, although the first point is fine."""
    tiny["cluster"]["workers"] = [1, 64]
    with pytest.raises(ConfigError, match=r"sweep point cluster.topology=.*fat_tree.*64 workers"):
        scenario_from_dict(_with_sweep(tiny, {
            "cluster.topology": [{"name": "switch"}, {"name": "fat_tree", "k": 4}]}))


def test_relative_files_in_values_start_at_the_scenario_folder(tiny, write_scenario, tmp_path,
                                                               monkeypatch):
    """A topology file named relative to the scenario is found from its folder, at load and
    again when the study expands the sweep from another working directory."""
    (tmp_path / "lab.yaml").write_text(
        "name: lab\nhosts: [a, b, c, d]\nswitches: [s]\nlinks:\n"
        + "".join(f"  - {{between: [{h}, s], bandwidth: 10Gbit/s, latency: 2us}}\n"
                  for h in "abcd"))
    path = write_scenario(_with_sweep(tiny, {"cluster.topology.name": ["switch", "lab.yaml"]}))
    sc = load_scenario(path)
    monkeypatch.chdir(tmp_path.parent)
    names = [v.scenario.cluster.topology.name for v in expand_sweep(sc)]
    assert names == ["switch", str((tmp_path / "lab.yaml").resolve())]


def test_cli_bad_sweep_path_is_one_line_before_anything_is_measured(tiny, write_scenario,
                                                                    tmp_path):
    """`run` with a misspelt sweep path: exit 2, one line naming the nearest valid path,
    no table, no profile measured, no output folder contents."""
    path = write_scenario(_with_sweep(tiny, {"cluster.colective": ["ring", "tree"]}))
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "out")])
    one_line_error(r, r"sweep: 'cluster.colective' is not a field of this scenario; "
                      r"nearest valid path: cluster.collective$", t0, stdout_empty=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("lengths", [(1000, 1000), (1000, 1000, 1000)])
def test_a_sweep_too_large_is_refused_at_once_with_its_size(tiny, write_scenario, tmp_path,
                                                            lengths):
    """10^6 (or 10^9) combinations: `run` refuses in one line that gives the size and the
    cap, within seconds, before validating any combination (every one was validated at
    load: a hang); nothing is written."""
    sweep = {"cluster.latency": [f"{i + 1}us" for i in range(lengths[0])],
             "compressors.0.name": ["none"] * lengths[1]}
    if len(lengths) == 3:
        sweep["seed"] = list(range(lengths[2]))
    path = write_scenario(_with_sweep(tiny, sweep))
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "out")])
    n = 1
    for k in lengths:
        n *= k
    one_line_error(r, rf"sweep: {n:,} combinations \(.*\), more than the 10,000 a study "
                      r"takes", t0, stdout_empty=True)
    assert not (tmp_path / "out").exists()


def test_the_sweep_cap_is_inclusive(tiny, monkeypatch):
    """A sweep of exactly MAX_VARIANTS combinations loads; one more is refused."""
    from rsdgc_sim.scenario import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "MAX_VARIANTS", 4)
    ok = scenario_from_dict(_with_sweep(tiny, {"seed": [1, 2], "batch_size": [1, 2]}))
    assert len(expand_sweep(ok)) == 4
    with pytest.raises(ConfigError, match=r"sweep: 6 combinations \(3 seed x 2 batch_size\), "
                                          r"more than the 4 a study takes"):
        scenario_from_dict(_with_sweep(tiny, {"seed": [1, 2, 3], "batch_size": [1, 2]}))


def test_max_variants_raises_the_cap_for_one_run(tiny, tmp_path, monkeypatch):
    """Past the cap the message says how to raise it; `run --max-variants N` takes a sweep
    of N combinations; the option is bounded."""
    from rsdgc_sim.scenario import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "MAX_VARIANTS", 2)
    tiny["device"] = {"model": "V100"}  # estimated: no measuring
    tiny["cluster"]["workers"] = [2]
    tiny["cluster"]["bandwidth"] = ["1Gbit/s"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_with_sweep(tiny, {"seed": [1, 2, 3]})))
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "o"), "-q"])
    one_line_error(r, r"sweep: 3 combinations \(3 seed\), more than the 2 a study takes \(or "
                      r"raise the cap: run --max-variants N\)", t0)
    r = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "o"), "-q",
                                 "--no-plot", "--max-variants", "3"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["run", str(path), "--max-variants", "1000001"])
    assert r.exit_code == 2 and "1000001 is not in the range 1<=x<=1000000" in r.output


def test_the_max_variants_option_states_the_caps_of_the_code():
    """`run --max-variants` spells the caps out (the command module stays light to import);
    they must be the code's."""
    from rsdgc_sim.cli.run import run
    from rsdgc_sim.scenario.sweep import MAX_VARIANTS, MAX_VARIANTS_HARD

    opt = next(p for p in run.params if p.name == "max_variants")
    assert opt.type.max == MAX_VARIANTS_HARD
    assert f"default {MAX_VARIANTS:,}, at most {MAX_VARIANTS_HARD:,}" in opt.help


def _point(tiny: dict, values: dict) -> dict:
    """``tiny`` with each dotted path set to its value (no sweep)."""
    import copy

    data = copy.deepcopy(tiny)
    data.pop("sweep", None)
    for path, value in values.items():
        node, parts = data, split_path(path)
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return data


def test_every_variant_equals_its_combination_validated_on_its_own(tiny):
    """Groups of paths are validated once and put together: each of 64 variants over six
    fields in four sections equals its own combination validated from scratch."""
    from rsdgc_sim.scenario.validate import validate_scenario

    sweep = {"compressors.1.density": [0.1, 0.01], "compressors.1.label": ["a", "b"],
             "cluster.topology.name": ["switch", "ring"], "cluster.collective": ["ring", "tree"],
             "batch_size": [8, 16], "model.input_size": [16, 32]}
    vs = expand_sweep(scenario_from_dict(_with_sweep(tiny, dict(sweep))))
    assert len(vs) == 64
    combos = [dict(zip(sweep, c, strict=True)) for c in itertools.product(*sweep.values())]
    for v, combo in zip(vs, combos, strict=True):
        assert v.values == combo
        alone = validate_scenario(_point(tiny, combo))
        assert v.scenario.model_dump() == alone.model_dump()
    assert [v.values for v in vs[-3:]] == combos[-3:] and vs[-1].values == vs[63].values


def test_a_combination_invalid_only_as_a_whole_is_refused_at_load(tiny):
    """Each label alone is fine with the other at its first value (a, b), but the last
    combination gives two compressors the label x: refused at load, naming it."""
    data = _with_sweep(tiny, {"compressors.0.label": ["a", "x"],
                              "compressors.1.label": ["b", "x"], "batch_size": [4, 8]})
    with pytest.raises(ConfigError, match=r"compressors\.0\.label='x', compressors\.1\.label='x'"
                                          r".*label 'x' used twice"):
        scenario_from_dict(data)


def test_a_sweep_of_100000_combinations_loads_and_expands_in_seconds(tiny):
    """Four fields of 50 x 40 x 2 x 25 values: the load checks 117 combinations, not
    100,000, and the variants are put together from them (not timed here: a count of
    validations instead)."""
    from rsdgc_sim.scenario import validate as validate_mod

    calls = []
    real = validate_mod.validate_scenario

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    data = _with_sweep(tiny, {"compressors.1.density": [0.001 * (i + 1) for i in range(50)],
                              "batch_size": list(range(1, 41)), "ddp.overlap": [True, False],
                              "seed": list(range(25))})
    import rsdgc_sim.scenario.sweep as sweep_mod

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_mod, "validate_scenario", counting)
        sc = scenario_from_dict(data, max_variants=100_000)
        assert len(calls) == 1 + 50 + 40 + 2 + 25
        vs = expand_sweep(sc)
        v = vs[54321]
        assert len(calls) == 1 + 50 + 40 + 2 + 25  # the run reuses the load's check
    assert len(vs) == 100_000
    assert v.values == {"compressors.1.density": 0.001 * 28, "batch_size": 7,
                        "ddp.overlap": True, "seed": 21}
    assert (v.scenario.compressors[1].params["density"], v.scenario.batch_size,
            v.scenario.ddp.overlap, v.scenario.seed) == (0.001 * 28, 7, True, 21)


def test_a_copy_with_another_sweep_is_checked_again(tiny):
    """The load's check is reused only for the scenario it checked: a copy with another
    swept value (a copy keeps the check's record) is validated, and its error raised."""
    sc = scenario_from_dict(_with_sweep(tiny, {"compressors.1.density": [0.1, 0.2]}))
    assert [v.scenario.compressors[1].params["density"] for v in expand_sweep(sc)] == [0.1, 0.2]
    bad = sc.model_copy(update={"sweep": {"compressors.1.density": [0.1, 2.0]}})
    with pytest.raises(ConfigError, match=r"density"):
        list(expand_sweep(bad))
