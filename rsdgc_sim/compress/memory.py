"""All the state of compression on one worker, apart from the (stateless) compressors:
error-feedback residuals and DGC momenta (in float32 for half-precision gradients),
EMA-smoothed layer importances, the iteration count that drives warm-up schedules, and the
random generators (as PyTorch's ``PowerSGDState``)."""

from __future__ import annotations

import torch

#: gradient dtypes whose residuals and momenta are kept in float32 (they overflow and round
#: away small updates in their own precision)
HALF_DTYPES = (torch.float16, torch.bfloat16)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the residual and momentum kept for a gradient of ``dtype``: float32 for
    half precision, the gradient's own dtype otherwise."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


class CompressorState:
    """One per worker. Keyed by tensor name.

    ``seed`` seeds this worker's generators (one per device, made on first use), so two
    states with the same seed draw the same random numbers and different workers should get
    different seeds. ``step()`` ends an iteration: schedules (warm-up) advance.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.iteration = 0
        self._residuals: dict[str, torch.Tensor] = {}
        self._momenta: dict[str, torch.Tensor] = {}
        self._importance: dict[str, float] = {}
        self._generators: dict[str, torch.Generator] = {}
        #: per tensor name, the density used at the last compression (layer-wise schemes)
        self.densities: dict[str, float] = {}

    # -- randomness ------------------------------------------------------------------
    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """This worker's generator on ``device`` (seeded with ``seed`` when first made)."""
        dev = torch.device(device)
        key = str(dev) if dev.type == "cpu" or dev.index is not None else f"{dev.type}:0"
        g = self._generators.get(key)
        if g is None:
            g = torch.Generator(device=key)
            g.manual_seed(self.seed)
            self._generators[key] = g
        return g

    # -- error feedback --------------------------------------------------------------
    def residual(self, name: str) -> torch.Tensor | None:
        """The error-feedback residual of ``name`` (what was not sent yet), or None."""
        return self._residuals.get(name)

    def set_residual(self, name: str, value: torch.Tensor | None) -> None:
        if value is None:
            self._residuals.pop(name, None)
        else:
            self._residuals[name] = value

    # -- momentum (DGC) --------------------------------------------------------------
    def momentum(self, name: str) -> torch.Tensor | None:
        """The locally accumulated momentum of ``name`` (DGC momentum correction), or None."""
        return self._momenta.get(name)

    def set_momentum(self, name: str, value: torch.Tensor | None) -> None:
        if value is None:
            self._momenta.pop(name, None)
        else:
            self._momenta[name] = value

    # -- layer importance (NSI layer-wise) -------------------------------------------
    def importance(self, name: str) -> float | None:
        """The EMA-smoothed importance of layer ``name``, or None before its first use."""
        return self._importance.get(name)

    def set_importance(self, name: str, value: float) -> None:
        self._importance[name] = float(value)

    # -- iteration -------------------------------------------------------------------
    def step(self) -> None:
        """End of an iteration: schedules advance."""
        self.iteration += 1

    def reset(self) -> None:
        """Forget residuals, momenta, importances and the iteration count; reseed."""
        self.__init__(self.seed)

    def state_dict(self) -> dict:
        """Everything needed to resume (tensors are references, not copies; generator
        states included), for ``torch.save``."""
        return {
            "seed": self.seed,
            "iteration": self.iteration,
            "residuals": dict(self._residuals),
            "momenta": dict(self._momenta),
            "importance": dict(self._importance),
            "densities": dict(self.densities),
            "generators": {k: g.get_state() for k, g in self._generators.items()},
        }

    def load_state_dict(self, sd: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.__init__(int(sd["seed"]))
        self.iteration = int(sd["iteration"])
        self._residuals = dict(sd["residuals"])
        self._momenta = dict(sd["momenta"])
        self._importance = {k: float(v) for k, v in sd["importance"].items()}
        self.densities = dict(sd.get("densities", {}))
        for key, st in sd.get("generators", {}).items():
            self.generator(key).set_state(st)

    def memory_bytes(self) -> int:
        """Bytes held in residual and momentum buffers."""
        ts = list(self._residuals.values()) + list(self._momenta.values())
        return sum(t.numel() * t.element_size() for t in ts)

    def __repr__(self) -> str:
        return (
            f"CompressorState(seed={self.seed}, iteration={self.iteration}, "
            f"residuals={len(self._residuals)}, momenta={len(self._momenta)})"
        )
