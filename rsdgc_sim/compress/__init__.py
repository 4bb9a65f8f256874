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
* NaN/Inf in any gradient raises GradientError naming it, before any state changes.
* ``set_compiled("auto" | True | False)``: the NSI score's torch.compile path (default
  "auto": CPU tensors of at least 2**16 elements; env ``RSDGC_SIM_COMPILE``).
"""

from . import dgc, fp16, none, nsi, randomk, threshold, topk  # noqa: F401  (registration)
from .base import COMPRESSORS, Compressor, Sparsifier, check_all_finite, check_finite, create
from .memory import CompressorState
from .neighborhood import compile_mode, nsi_score, set_compiled
from .payload import Payload, accumulate, decompress, decompress_sum
from .schedule import DGC_WARMUP

__all__ = [
    "COMPRESSORS",
    "DGC_WARMUP",
    "Compressor",
    "CompressorState",
    "Payload",
    "Sparsifier",
    "accumulate",
    "check_all_finite",
    "check_finite",
    "compile_mode",
    "create",
    "decompress",
    "decompress_sum",
    "nsi_score",
    "set_compiled",
]
