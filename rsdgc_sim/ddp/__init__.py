"""DDP communication hooks that apply rsdgc-sim's compressors in real
``torch.distributed`` training (gloo on CPUs, NCCL on GPUs), locally or under ``torchrun``.

* :mod:`~rsdgc_sim.ddp.hook`: the hook (:func:`compression_hook`) and :func:`make_comm_hook`;
* :mod:`~rsdgc_sim.ddp.state`: its per-rank state (:class:`CompressionHookState`,
  :class:`HookStats`);
* :mod:`~rsdgc_sim.ddp.wire`: the byte layout of sparse payloads in the all-gather.
"""

from .hook import compression_hook, make_comm_hook
from .state import MIN_DENSE_ITERS, CompressionHookState, HookStats

__all__ = [
    "MIN_DENSE_ITERS",
    "CompressionHookState",
    "HookStats",
    "compression_hook",
    "make_comm_hook",
]
