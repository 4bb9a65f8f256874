"""The NSI score's torch.compile mode as profiles see it: a compilation failure warns once
with its reason, compile_mode() reports the eager fallback, and the profile records it."""

import warnings

import pytest
import torch

from rsdgc_sim.compress import neighborhood as nb
from rsdgc_sim.profile.measure import measure_profile


@pytest.fixture
def compile_state(monkeypatch):
    """A clean, restored compile state (mode "auto", no failure, no compiled function)."""
    monkeypatch.setitem(nb._compiled, "mode", "auto")
    monkeypatch.setitem(nb._compiled, "failed", None)
    monkeypatch.setitem(nb._compiled, "fn", None)


@pytest.fixture
def broken_compiler(compile_state, monkeypatch):
    """torch.compile's function fails on first use with a long, multi-line message."""

    def core(*_args, **_kwargs):
        raise RuntimeError("inductor: no C++ compiler\nlong traceback of the compiler\n...")

    monkeypatch.setattr(nb, "_core_compiled", lambda: core)


@pytest.mark.parametrize("mode, expected", [("on", "on"), ("off", "off"), ("auto", "auto"),
                                            (True, "on"), (False, "off")])
def test_compile_mode_reports_the_mode_set(compile_state, mode, expected):
    """Without a failure, compile_mode() is the mode set: on, off or auto."""
    nb.set_compiled(mode)
    assert nb.compile_mode() == expected


def test_compile_failure_warns_once_with_its_reason(broken_compiler):
    """The first failed compilation warns once (RuntimeWarning naming the exception and the
    first line of its message); later calls take the eager path silently and give the eager
    scores; compile_mode() reports "eager (compile failed: <reason>)" and the compiled path is
    off for every size."""
    nb.set_compiled("on")
    x = torch.randn(16, 20, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = nb.nsi_score(x)
        second = nb.nsi_score(x)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1, msgs
    assert "torch.compile failed (RuntimeError: inductor: no C++ compiler)" in msgs[0]
    assert "long traceback" not in msgs[0]
    reference = nb._score_eager(x, 3, "mean_std", 1.0, 1e-12)
    assert torch.equal(first, reference) and torch.equal(second, reference)
    assert nb.compile_mode() == "eager (compile failed: RuntimeError: inductor: no C++ compiler)"
    assert not nb.compiled_enabled(1 << 20) and not nb.compiled_enabled(10)


def test_failure_reason_is_one_short_line():
    """A reason is `<type>: <first non-empty line>`, at most 200 characters."""
    assert nb._failure_reason(ValueError("\n\n  bad shape  \nmore")) == "ValueError: bad shape"
    assert nb._failure_reason(KeyError()) == "KeyError"
    assert len(nb._failure_reason(RuntimeError("x" * 1000))) == 200


def test_profile_records_the_eager_fallback(broken_compiler):
    """A profile measured while compilation fails records the mode actually used, so that a
    profile of the eager path is never mistaken for a compiled one."""
    nb.set_compiled("on")
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        p = measure_profile("cnn_small", 10, 16, 2, ["cpu"], {"nsi": {"name": "nsi", "min_numel": 0}},
                            warmup=0, iterations=1)
    assert p.devices[0].nsi_compile == "eager (compile failed: RuntimeError: inductor: no C++ compiler)"


def test_profile_records_the_mode_set(compile_state):
    """With compilation off, the profile says "off"."""
    nb.set_compiled("off")
    p = measure_profile("cnn_small", 10, 16, 2, ["cpu"], {"nsi": {"name": "nsi"}}, warmup=0, iterations=1)
    assert p.devices[0].nsi_compile == "off"
