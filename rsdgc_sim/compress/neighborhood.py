"""The Neighborhood Statistical Indicator (NSI) score of every gradient element.

From the RS-DGC abstract (Xie et al., arXiv 2312.17530): elements are scored by statistics
of the gradient values in a neighborhood around them, which damps random noise and lets
small gradients inside an important region survive. The concrete form below is **our
reconstruction** (the paper's full text was not available):

* the tensor is viewed as 2-D: ``[O, I, kh, kw] -> [O, I*kh*kw]``, ``[O, I]`` as is, any
  other ``[d0, ...] -> [d0, rest]``;
* the neighborhood is the ``p x p`` window centred on the element (stride 1, odd ``p``),
  clipped at the borders: statistics are over the in-bounds elements only
  (``avg_pool2d(..., count_include_pad=False)``);
* the ``statistic`` (``W`` the element's window, ``mean_W``/``std_W`` over it, std the
  population std ``sqrt(mean(a^2) - mean(a)^2)``):

  - ``mean_std``: ``mean_W(|a|) + lam * std_W(a)``;
  - ``mean_abs``: ``mean_W(|a|)``;
  - ``snr``: ``|mean_W(a)| / (std_W(a) + eps)``;
  - ``abs_plus_mean``: ``|a| + lam * mean_W(|a|)``: the element's own magnitude, raised
    by its neighborhood's (``lam = 0``: plain top-k);
  - ``abs_times_mean``: ``|a| * (1 + lam * mean_W(|a|) / (mean_T(|a|) + eps))``, ``mean_T``
    over the whole tensor: the magnitude scaled up where the neighborhood is more active
    than the tensor on average (``lam = 0``: plain top-k).

  The first three score a window and forget the element's own value (a large gradient in a
  quiet window can lose to a small one beside it); the last two keep it. All are
  homogeneous of degree 1 in ``a`` except ``snr`` (degree 0), so the layer-wise importance
  (mean score) follows the gradients' scale.

The score is computed in float32 (float64 input stays float64). The eager path uses
``avg_pool2d``; the compiled path (``torch.compile`` of plain shifted-slice window sums over a
zero-padded copy, dynamic shapes: one compilation for all layers, seconds to tens of seconds
the first time, cached on disk by inductor) is several times faster on the CPU. By default
("auto") CPU tensors of at least 2**16 elements take the compiled path; see
:func:`set_compiled`.
A compilation failure switches to eager for the rest of the process, with one
``RuntimeWarning`` giving the reason; :func:`compile_mode` then reports
``"eager (compile failed: <reason>)"``. The results agree to float32 rounding; the times do
not, which is why profiles record :func:`compile_mode`.
"""

from __future__ import annotations

import math
import threading
import warnings

import torch
import torch.nn.functional as F

# the compile mode lives torch-free (a profile's cache key reads it); re-exported here
from .compile_state import _compiled, compile_mode, set_compiled  # noqa: F401

STATISTICS = ("mean_std", "mean_abs", "snr", "abs_plus_mean", "abs_times_mean")


def as_2d(t: torch.Tensor) -> torch.Tensor:
    """The 2-D view NSI windows slide over: ``[d0, prod(rest)]`` (1-D: one row)."""
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))


def _sigma(m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    """Population std from the window means of ``a`` and ``a^2``. ``m2 - m1^2`` loses about
    ``eps * m2`` to cancellation, so variances below ``8 eps m2`` (single-element or constant
    windows, where the true value is 0) are set to 0 instead of becoming ``sqrt(noise)``."""
    var = m2 - m1 * m1
    tiny = m2 * (8 * torch.finfo(m2.dtype).eps)
    return torch.where(var > tiny, var, torch.zeros_like(var)).sqrt()


def _keep_own(
    mag: torch.Tensor, mu_abs: torch.Tensor, statistic: str, lam: float, eps: float
) -> torch.Tensor:
    """The scores that keep the element's own magnitude ``mag`` (``abs_plus_mean``,
    ``abs_times_mean``) from the window means of ``|a|``."""
    if statistic == "abs_plus_mean":
        return mag + lam * mu_abs
    return mag * (1 + lam * mu_abs / (mag.mean() + eps))


def _score_eager(
    a2d: torch.Tensor, kernel: int, statistic: str, lam: float, eps: float
) -> torch.Tensor:
    x = a2d if a2d.dtype in (torch.float32, torch.float64) else a2d.float()
    pad = kernel // 2

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, kernel, stride=1, padding=pad, count_include_pad=False)

    if statistic in ("mean_abs", "abs_plus_mean", "abs_times_mean"):
        mag = x.abs()
        mu_abs = pool(mag.unsqueeze(0)).squeeze(0)
        if statistic == "mean_abs":
            return mu_abs
        return _keep_own(mag, mu_abs, statistic, lam, eps)
    if statistic == "mean_std":
        m = pool(torch.stack((x.abs(), x, x * x)))
        mu_abs, m1, m2 = m.unbind(0)
    else:
        m = pool(torch.stack((x, x * x)))
        m1, m2 = m.unbind(0)
    sigma = _sigma(m1, m2)
    if statistic == "mean_std":
        return mu_abs.add_(sigma, alpha=lam) if lam else mu_abs.clone()
    return m1.abs().div_(sigma.add_(eps))


def _score_core(
    xp: torch.Tensor,
    rinv: torch.Tensor,
    cinv: torch.Tensor,
    kernel: int,
    statistic: str,
    lam: float,
    eps: float,
) -> torch.Tensor:
    """The score from the zero-padded tensor ``xp`` as plain window sums of shifted slices
    (what ``torch.compile`` fuses into one loop); ``rinv``/``cinv`` are the reciprocal
    in-bounds counts per row / column (the clipped windows' sizes factor into them)."""
    h = xp.shape[0] - kernel + 1
    w = xp.shape[1] - kernel + 1
    s_abs = s1 = s2 = None
    for i in range(kernel):
        for j in range(kernel):
            v = xp[i : i + h, j : j + w]
            if s1 is None:
                s_abs, s1, s2 = v.abs(), v, v * v
            else:
                s_abs = s_abs + v.abs()
                s1 = s1 + v
                s2 = s2 + v * v
    inv = rinv[:, None] * cinv[None, :]
    m1 = s1 * inv
    sigma = _sigma(m1, s2 * inv)
    if statistic == "mean_abs":
        return s_abs * inv
    if statistic in ("abs_plus_mean", "abs_times_mean"):
        r = kernel // 2
        return _keep_own(xp[r : r + h, r : r + w].abs(), s_abs * inv, statistic, lam, eps)
    if statistic == "mean_std":
        return s_abs * inv + lam * sigma
    return m1.abs() / (sigma + eps)


def _inv_counts(n: int, r: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    i = torch.arange(n, device=device)
    cnt = torch.clamp(i + r, max=n - 1) - torch.clamp(i - r, min=0) + 1
    return 1.0 / cnt.to(dtype)


def padded_base(a2d: torch.Tensor, r: int) -> torch.Tensor | None:
    """The zero-bordered ``[h + 2r, w + 2r]`` buffer whose interior ``a2d`` is (as made by
    :func:`padded_zeros`), or None when ``a2d`` is not such an interior."""
    if r <= 0 or a2d.dim() != 2:
        return None
    h, w = a2d.shape
    row = w + 2 * r
    if a2d.stride() != (row, 1) or a2d.storage_offset() != r * row + r:
        return None
    if a2d.untyped_storage().nbytes() != (h + 2 * r) * row * a2d.element_size():
        return None
    return a2d.as_strided((h + 2 * r, row), (row, 1), 0)


def padded_zeros(h: int, w: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """The ``[h, w]`` interior of a new zero ``[h + 2r, w + 2r]`` buffer: a tensor kept in
    it can be scored without a padded copy (its border stays zero: only the interior is
    ever written)."""
    xp = torch.zeros(h + 2 * r, w + 2 * r, dtype=like.dtype, device=like.device)
    return xp[r : r + h, r : r + w]


def _score_padded(x, kernel, statistic, lam, eps, core):
    r = kernel // 2
    h, w = x.shape
    xp = padded_base(x, r) if r else x
    if xp is None:
        xp = F.pad(x, (r, r, r, r))
    rinv = _inv_counts(h, r, x.device, x.dtype)
    cinv = _inv_counts(w, r, x.device, x.dtype)
    return core(xp, rinv, cinv, kernel, statistic, lam, eps)


#: tensors at least this large take the compiled path in "auto" mode
AUTO_COMPILE_NUMEL = 1 << 16

_lock = threading.Lock()


def compiled_enabled(numel: int | None = None, device: torch.device | None = None) -> bool:
    """Whether a tensor of ``numel`` elements (None: any) on ``device`` takes the compiled
    path ("auto": CPU tensors of at least :data:`AUTO_COMPILE_NUMEL` elements; on GPUs the
    eager ``avg_pool2d`` is already fast)."""
    if _compiled["failed"] is not None:
        return False
    mode = _compiled["mode"]
    if mode == "auto":
        cpu = device is None or device.type == "cpu"
        return cpu and numel is not None and numel >= AUTO_COMPILE_NUMEL
    return mode == "on"


def _core_compiled():
    with _lock:
        if _compiled["fn"] is None:
            _compiled["fn"] = torch.compile(_score_core, dynamic=True)
    return _compiled["fn"]


def _failure_reason(e: BaseException) -> str:
    """``<type>: <first non-empty line of the message>`` (compiler errors run to pages)."""
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    reason = f"{type(e).__name__}: {line}" if line else type(e).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _compile_failed(e: BaseException) -> None:
    """Switch to eager for the rest of the process; warn once, with the reason."""
    with _lock:
        if _compiled["failed"] is not None:
            return
        _compiled["failed"] = _failure_reason(e)
    warnings.warn(
        f"NSI score: torch.compile failed ({_compiled['failed']}); using the eager path "
        "(avg_pool2d) for the rest of this process: same scores, other times",
        RuntimeWarning,
        stacklevel=3,
    )


def nsi_score(
    a2d: torch.Tensor,
    kernel: int = 3,
    statistic: str = "mean_std",
    lam: float = 1.0,
    eps: float = 1e-12,
) -> torch.Tensor:
    """The NSI score of every element of the 2-D tensor ``a2d`` (same shape, float32/64)."""
    if a2d.numel() == 0:
        return torch.zeros(a2d.shape, dtype=torch.float32, device=a2d.device)
    if compiled_enabled(a2d.numel(), a2d.device):
        x = a2d if a2d.dtype in (torch.float32, torch.float64) else a2d.float()
        try:
            return _score_padded(x, kernel, statistic, float(lam), float(eps), _core_compiled())
        except Exception as e:  # any compiler failure: eager is always correct
            _compile_failed(e)
    return _score_eager(a2d, kernel, statistic, float(lam), float(eps))
