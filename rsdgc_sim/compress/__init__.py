"""Gradient compressors: RS-DGC (``nsi``) and its rivals, one API for all.

>>> from rsdgc_sim.compress import create, CompressorState
>>> comp = create("topk", density=0.5)
>>> state = CompressorState(seed=0)
>>> import torch
>>> p = comp.compress("w", torch.tensor([1.0, -3.0, 2.0, 0.5]), state)
>>> p.indices.tolist(), p.values.tolist(), p.wire_bytes
([1, 2], [-3.0, 2.0], 16)
>>> comp.decompress(p).tolist(), state.residual("w").tolist()
([0.0, -3.0, 2.0, 0.0], [1.0, 0.0, 0.0, 0.5])

* ``create(name, **params)``: a compressor (``COMPRESSORS.names()`` lists them); bad names
  and parameters fail here (UnknownNameError / ConfigError listing the choices). Every
  compressor has ``.name``, ``.params`` (resolved, JSON-ready), ``.label``, ``.sparse``.
* ``CompressorState(seed)``: one per worker; residuals, momenta, layer importances, the
  iteration (``step()``), generators. ``state.residual(name)`` is the live buffer (clone it
  to keep a copy); ``state_dict()`` / ``load_state_dict()`` for checkpoints.
* ``comp.compress_many({name: grad}, state)``: one iteration, all tensors, the path every
  caller uses per iteration (layer-wise ``nsi`` shares its budget among these tensors);
  ``comp.compress(name, grad, state)``: one tensor on its own.
* ``Payload``: ``values``, ``indices`` (int32, or None for a dense payload), ``numel``,
  ``shape``, ``dtype``, ``wire_bytes``. Dense payloads of ``none`` alias the gradient.
* ``decompress(payload)``: the dense tensor; ``decompress_sum(payloads, average=False)``:
  the sum (or mean) of p ranks' payloads of one tensor, one ``index_add_`` for all of them;
  ``accumulate(out, payload, alpha=1.0)``: add one payload into a dense tensor in place.
* NaN/Inf in any gradient raises GradientError naming it, before any state changes; so do
  NaN/Inf in any payload (an overflow in a residual or momentum), after.
* ``check_compressor(name, params)``: the parameter check of ``create`` without torch
  (:mod:`rsdgc_sim.compress.params` holds every compressor's parameters); importing this
  package imports torch only when a name that needs it is first used.
* ``set_compiled("auto" | True | False)``: the NSI score's torch.compile path (default
  "auto": CPU tensors of at least 2**16 elements; env ``RSDGC_SIM_COMPILE``).
"""

from __future__ import annotations

import importlib
from typing import Any

# torch-free: parameter checks (scenario loading imports only these)
from .params import COMPRESSOR_PARAMS, check_compressor

#: the rest of the API, imported (with torch) on first use (PEP 562)
_LAZY = {
    "COMPRESSORS": "base",
    "Compressor": "base",
    "Sparsifier": "base",
    "check_all_finite": "base",
    "check_finite": "base",
    "check_payloads_finite": "base",
    "create": "base",
    "CompressorState": "memory",
    "compile_mode": "neighborhood",
    "nsi_score": "neighborhood",
    "set_compiled": "neighborhood",
    "Payload": "payload",
    "accumulate": "payload",
    "decompress": "payload",
    "decompress_sum": "payload",
    "DGC_WARMUP": "schedule",
}

__all__ = [
    "COMPRESSORS",
    "COMPRESSOR_PARAMS",
    "DGC_WARMUP",
    "Compressor",
    "CompressorState",
    "Payload",
    "Sparsifier",
    "accumulate",
    "check_all_finite",
    "check_compressor",
    "check_finite",
    "check_payloads_finite",
    "compile_mode",
    "create",
    "decompress",
    "decompress_sum",
    "nsi_score",
    "set_compiled",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(f"{__name__}.base").load_builtins()  # registers every compressor
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
