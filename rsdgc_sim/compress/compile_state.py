"""Whether the NSI score goes through ``torch.compile``: the mode set (by
``RSDGC_SIM_COMPILE`` at import, or :func:`set_compiled`) and, once a compilation has failed
in this process, why. Torch-free, so that a profile's cache key (which includes
:func:`compile_mode`) is computed without importing torch; :mod:`.neighborhood` compiles
and records failures here."""

from __future__ import annotations

import os


def _mode_from_env() -> str:
    v = os.environ.get("RSDGC_SIM_COMPILE", "auto").strip().lower()
    return {"1": "on", "true": "on", "on": "on", "0": "off", "false": "off", "off": "off"}.get(
        v, "auto"
    )


#: requested mode, the compiled function once made, the reason of a compilation failure
_compiled: dict = {"mode": _mode_from_env(), "fn": None, "failed": None}


def set_compiled(mode: bool | str) -> None:
    """Route :func:`~rsdgc_sim.compress.neighborhood.nsi_score` through ``torch.compile``:
    ``True``/``"on"`` always, ``False``/``"off"`` never, ``"auto"`` (the default) for CPU
    tensors of at least :data:`~rsdgc_sim.compress.neighborhood.AUTO_COMPILE_NUMEL`
    elements only, so that small tensors never pay the compilation. The environment
    variable ``RSDGC_SIM_COMPILE`` (``1``, ``0``, ``auto``) sets the mode at import."""
    if mode is True or mode == "on":
        _compiled["mode"] = "on"
    elif mode is False or mode == "off":
        _compiled["mode"] = "off"
    elif mode == "auto":
        _compiled["mode"] = "auto"
    else:
        raise ValueError(f"compile mode must be True, False, 'on', 'off' or 'auto', not {mode!r}")


def compile_mode() -> str:
    """The effective mode of the NSI score, as profiles record it and their cache key should
    include it: ``"on"``, ``"off"`` or ``"auto"`` (as set), or, once a compilation has
    failed in this process, ``"eager (compile failed: <exception type>: <first line>)"``."""
    if _compiled["failed"] is not None:
        return f"eager (compile failed: {_compiled['failed']})"
    return str(_compiled["mode"])


__all__ = ["compile_mode", "set_compiled"]
