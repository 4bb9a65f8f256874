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

``compress_many`` compresses one iteration's gradients (layer-wise schemes share their
budget there); ``decompress_sum`` / ``accumulate`` aggregate several ranks' payloads.
"""

from . import dgc, fp16, none, nsi, randomk, threshold, topk  # noqa: F401  (registration)
from .base import COMPRESSORS, Compressor, Sparsifier, check_finite, create
from .memory import CompressorState
from .neighborhood import nsi_score, set_compiled
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
    "check_finite",
    "create",
    "decompress",
    "decompress_sum",
    "nsi_score",
    "set_compiled",
]
