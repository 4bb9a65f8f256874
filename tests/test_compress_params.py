"""Compressor parameters without torch (rsdgc_sim.compress.params): ``check_compressor``
gives what ``create`` checks, with the same classes and the same messages, and importing it
does not import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rsdgc_sim.compress import COMPRESSOR_PARAMS, COMPRESSORS, create
from rsdgc_sim.compress.params import STATISTICS, check_compressor
from rsdgc_sim.errors import ConfigError, UnknownNameError

BAD = [
    ("topk", {"density": 0.0}),
    ("topk", {"kernel": 3}),
    ("none", {"density": 0.1}),
    ("randomk", {"density": float("nan")}),
    ("randomk", {"shared_indices": "maybe"}),
    ("nsi", {"kernel": 4}),
    ("nsi", {"statistic": "max"}),
    ("nsi", {"d_min": 0.05, "d_max": 0.02}),
    ("nsi", {"warmup": [0.5, 0.0]}),
    ("dgc", {"selector": "x"}),
    ("dgc", {"momentum": 1.0, "clip_norm": 0}),
    ("threshold", {"threshold": -1}),
    ("fp16", {"error_feedback": "often"}),
]


def test_check_compressor_does_not_import_torch():
    """Checking a compressor's parameters imports neither torch nor the compressors (run in
    a fresh interpreter)."""
    code = (
        "import sys, rsdgc_sim.compress.params as p; "
        "p.check_compressor('topk', {'density': 0.1}); "
        "p.check_compressor('nsi', {'density': 0.01, 'kernel': 5}); "
        "import rsdgc_sim.compress; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_resolved_params_equal_create():
    """check_compressor returns the resolved parameters, exactly ``create(...).params``."""
    assert check_compressor("topk", {"density": 0.1}) == create("topk", density=0.1).params
    nsi = check_compressor("nsi", {"density": 0.02})
    assert nsi == create("nsi", density=0.02).params
    assert nsi["d_min"] == pytest.approx(0.002) and nsi["d_max"] == pytest.approx(0.2)
    assert check_compressor("none", {}) == {}
    assert check_compressor("randomk", {})["shared_indices"] is False


def test_unknown_name_lists_choices_as_create_does():
    """An unknown name is the UnknownNameError of ``create``, listing the compressors."""
    with pytest.raises(UnknownNameError) as theirs:
        create("nsx")
    with pytest.raises(UnknownNameError, match="unknown compressor 'nsx'; choose one of: dgc, efsignsgd, fp16") as ours:
        check_compressor("nsx", {})
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("name, params", BAD)
def test_bad_parameters_give_the_message_of_create(name, params):
    """Every bad parameter is the ConfigError ``create`` raises, word for word, ending with
    the compressor's parameters."""
    with pytest.raises(ConfigError) as theirs:
        create(name, **params)
    with pytest.raises(ConfigError, match=f"compressor '{name}': .*; parameters: ") as ours:
        check_compressor(name, params)
    assert str(ours.value) == str(theirs.value)


def test_params_must_be_a_mapping():
    """Parameters that are not a mapping are a ConfigError naming the compressor."""
    with pytest.raises(ConfigError, match="compressor 'topk': parameters must be a mapping, got list"):
        check_compressor("topk", [0.1])  # type: ignore[arg-type]


def test_every_compressor_validates_with_the_registered_class():
    """The torch-free registry names every compressor, and each compressor class validates
    with exactly the class registered for its name; NSI's statistics are the ones the score
    implements."""
    from rsdgc_sim.compress import neighborhood

    assert COMPRESSOR_PARAMS.names() == COMPRESSORS.names()
    for name in COMPRESSORS.names():
        assert COMPRESSORS.get(name).Params is COMPRESSOR_PARAMS.get(name), name
    assert STATISTICS == neighborhood.STATISTICS
