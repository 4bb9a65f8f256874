"""Profile cache keys (rsdgc_sim.study.profiles) are computed without importing torch, and
are the keys that the torch-derived values (``torch.__version__``, the NSI compile mode of
``compress.neighborhood``, the cost model of ``profile.estimate``) give: caches written
before still hit."""

import subprocess
import sys

import pytest

from rsdgc_sim.profile.store import profile_key
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.profiles import estimated_profile, profile_inputs, torch_version


class _KeyStore:
    """A profile store that records the key asked for and answers a stand-in profile."""

    def __init__(self):
        self.keys: list[str] = []

    def get(self, key, on_invalid=None):
        self.keys.append(key)
        return "cached profile"

    def path(self, key):
        return f"/nowhere/{key}.json"


def _old_estimated_key(sc) -> str:
    """The key of an estimated profile as it was computed before (torch imported)."""
    import torch

    from rsdgc_sim.compress.neighborhood import compile_mode
    from rsdgc_sim.profile.estimate import COST_MODEL_VERSION

    specs = sc.compressor_specs()
    specs.setdefault(sc.dense_label(), {"name": "none"})
    return profile_key({
        "model": sc.model.model_dump(), "batch_size": sc.batch_size,
        "device_model": sc.device_model().model_dump(mode="json"), "compressors": specs,
        "seed": sc.seed, "cost_model": COST_MODEL_VERSION, "torch": torch.__version__,
        "nsi_compile": compile_mode()})


#: what the compile mode of each case reads (as profiles recorded it before)
_EXPECTED_MODE = {"on": "on", "off": "off", "auto": "auto",
                  "failed": "eager (compile failed: RuntimeError: no compiler)"}


@pytest.fixture
def compile_state():
    """The NSI compile state, restored after the test."""
    from rsdgc_sim.compress import neighborhood as nb

    saved = dict(nb._compiled)
    yield nb
    nb._compiled.update(saved)


def test_torch_version_is_torchs_own():
    """The installed distribution's version is the very string torch reports."""
    import torch

    assert torch_version() == torch.__version__
    assert type(torch_version()) is str


@pytest.mark.parametrize("mode", ["on", "off", "auto", "failed"])
def test_measured_profile_key_is_the_torch_derived_one(tiny, compile_state, mode):
    """The inputs of a measured profile's key hold torch's version and the compile mode
    that ``compress.neighborhood`` reports (after a failed compile too): same key."""
    import torch

    nb = compile_state
    if mode == "failed":
        nb._compiled["failed"] = "RuntimeError: no compiler"
    else:
        nb.set_compiled(mode)
    sc = scenario_from_dict(tiny)
    new = profile_inputs(sc, ["cpu"])
    assert new["torch"] == torch.__version__
    assert new["nsi_compile"] == nb.compile_mode() == _EXPECTED_MODE[mode]
    old = {**new, "torch": torch.__version__, "nsi_compile": nb.compile_mode()}
    assert profile_key(new) == profile_key(old)


@pytest.mark.parametrize("mode", ["on", "off", "failed"])
def test_estimated_profile_key_is_the_torch_derived_one(tiny, compile_state, mode):
    """An estimated profile is looked up under the key that the torch-derived values
    give, whatever the compile mode."""
    nb = compile_state
    if mode == "failed":
        nb._compiled["failed"] = "RuntimeError: no compiler"
    else:
        nb.set_compiled(mode)
    tiny["device"] = {"model": "H100-SXM"}
    sc = scenario_from_dict(tiny)
    store = _KeyStore()
    assert nb.compile_mode() == _EXPECTED_MODE[mode]
    assert estimated_profile(sc, store) == ("cached profile", True)
    assert store.keys == [_old_estimated_key(sc)]


def test_a_cached_estimated_profile_is_found_without_torch(tiny, write_scenario, tmp_path):
    """Finding an estimated profile in the cache (a rerun, in a process of its own) imports
    no torch; estimating it (the first run, here) does."""
    from rsdgc_sim.profile.store import ProfileStore
    from rsdgc_sim.scenario import load_scenario
    from rsdgc_sim.study.profiles import estimated_profile

    tiny["device"] = {"model": "H100-SXM"}
    path = write_scenario(tiny)
    _, cached = estimated_profile(load_scenario(path), ProfileStore(tmp_path / "cache"))
    assert not cached
    code = ("import sys\n"
            "from rsdgc_sim.scenario import load_scenario\n"
            "from rsdgc_sim.profile.store import ProfileStore\n"
            "from rsdgc_sim.study.profiles import estimated_profile\n"
            f"store = ProfileStore({str(tmp_path / 'cache')!r})\n"
            f"sc = load_scenario({str(path)!r})\n"
            "_, cached = estimated_profile(sc, store)\n"
            "print(cached, 'torch' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True False"
