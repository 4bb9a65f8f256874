"""``synthetic_rs``: remote-sensing-like scenes drawn procedurally from a seed.

Eight scene classes, each a texture or layout seen from above (:data:`CLASSES`): farmland
(parallel stripes), forest (blobby canopy), water (smooth, dark, with ripples), dense urban
(a grid of blocks), roads (two crossing lines), bare soil (fine noise), circular farmland (a
centre-pivot disc) and coast (sand meeting water along a wavy line). Every scene has a
random orientation, scale and offset, colour jitter and pixel noise.

``difficulty`` in [0, 1] sets how hard the task is: the amount of colour jitter, the pixel
noise, the loss of pattern contrast, and the class overlap (each scene is blended with a
scene of another class, with a weight up to ``0.6 * difficulty``).

Every sample is a pure function of (seed, index): all randomness comes from a counter-based
integer hash of (seed, index, draw number), so a batch is generated at once, vectorised,
and the same index gives the same image in any batch, at any batch size. Labels are
``index % num_classes`` (exactly balanced). Generated chunks are cached in memory as uint8.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError

CLASSES = ["farmland", "forest", "water", "dense_urban", "roads", "bare_soil",
           "circular_farmland", "coast"]
#: tuned: cnn_small at 32 px, 8192 samples, 4 workers x 32, 300 steps reaches ~87 % dense (README)
DEFAULT_DIFFICULTY = 0.35
#: samples generated (and cached) together
CHUNK = 512
#: the cache is kept when the whole data set fits in this many bytes (uint8)
CACHE_LIMIT_BYTES = 512 * 2**20

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
# draw numbers of one sample's random stream
_P_MAIN, _P_CONF, _P_JITTER, _P_MIX = 0, 8, 16, 24
_F_COARSE, _F_FINE, _F_GRAIN = 32, 32 + 36, 32 + 36 + 144
_PIXELS = 32 + 36 + 144 + 400
_COARSE, _FINE, _GRAIN = 6, 12, 20  # smooth-noise grid sizes

# (background, pattern) colours of every class, RGB in [0, 1]
_PALETTE = torch.tensor([
    [[0.55, 0.47, 0.32], [0.42, 0.58, 0.28]],  # farmland: soil / crop stripes
    [[0.13, 0.27, 0.13], [0.24, 0.42, 0.20]],  # forest: shade / canopy
    [[0.10, 0.18, 0.32], [0.15, 0.25, 0.40]],  # water: deep / ripple crest
    [[0.30, 0.30, 0.31], [0.70, 0.67, 0.64]],  # dense urban: street / roof
    [[0.40, 0.46, 0.30], [0.62, 0.62, 0.62]],  # roads: fields / asphalt
    [[0.60, 0.50, 0.38], [0.74, 0.64, 0.50]],  # bare soil: dark / light grain
    [[0.62, 0.53, 0.40], [0.33, 0.55, 0.24]],  # circular farmland: soil / irrigated disc
    [[0.84, 0.79, 0.64], [0.10, 0.20, 0.35]],  # coast: sand / sea
])


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply, as Chris Wellons' lowbias32, with both
    multipliers below 2**31 so that int64 products never overflow) of int64 tensors holding
    32-bit values."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x68E31DA5) & _M32
    return x ^ (x >> 16)


def sample_keys(seed: int, indices: torch.Tensor) -> torch.Tensor:
    """One 32-bit key per sample, a function of (seed, index) only."""
    s = _hash32(torch.tensor(seed & _M32)) ^ _hash32(torch.tensor(((seed >> 32) + _GOLDEN) & _M32))
    return _hash32(s ^ _hash32(indices.to(torch.int64) & _M32)) + (indices.to(torch.int64) >> 32)


def uniform(keys: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """Draws ``first .. first + count - 1`` of every sample's stream: ``[n, count]``
    float32 uniform in (0, 1)."""
    j = torch.arange(first, first + count, dtype=torch.int64)
    h = _hash32(keys[:, None] + ((j * _GOLDEN) & _M32)[None, :])
    return ((h.to(torch.float64) + 0.5) / 2**32).to(torch.float32)


def gaussian(keys: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """Draws ``first ..`` of every sample's stream as ``[n, count]`` standard normals
    (Box-Muller on the two 16-bit halves of one draw)."""
    j = torch.arange(first, first + count, dtype=torch.int64)
    h = _hash32(keys[:, None] + ((j * _GOLDEN) & _M32)[None, :])
    u1 = ((h >> 16).to(torch.float32) + 0.5) / 65536
    u2 = ((h & 0xFFFF).to(torch.float32) + 0.5) / 65536
    return torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)


def _smooth(keys: torch.Tensor, first: int, grid: int, size: int) -> torch.Tensor:
    """A smooth random field per sample, ``[n, size, size]`` in [0, 1]: a ``grid x grid``
    lattice of uniforms, bicubic-upsampled."""
    lattice = uniform(keys, first, grid * grid).view(-1, 1, grid, grid)
    up = F.interpolate(lattice, size=(size, size), mode="bicubic", align_corners=False)
    return up[:, 0].clamp(0, 1)


def _sigmoid(x: torch.Tensor, sharpness: float) -> torch.Tensor:
    return torch.sigmoid(sharpness * x)


def _pattern(c: int, p: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             coarse: torch.Tensor, fine: torch.Tensor, grain: torch.Tensor) -> torch.Tensor:
    """Class ``c``'s pattern, ``[n, s, s]`` in [0, 1] (0: background colour, 1: pattern
    colour), for per-sample parameters ``p`` ([n, 8] uniforms) on the pixel grid ``x, y``."""
    n = p.shape[0]
    angle = (p[:, 0] * 2 * math.pi).view(n, 1, 1)
    scale = (0.7 + 0.7 * p[:, 1]).view(n, 1, 1)
    tx, ty = ((p[:, 2] - 0.5) * 2).view(n, 1, 1), ((p[:, 3] - 0.5) * 2).view(n, 1, 1)
    u = (x * torch.cos(angle) + y * torch.sin(angle)) * scale + tx * 0.3
    v = (-x * torch.sin(angle) + y * torch.cos(angle)) * scale + ty * 0.3
    a, b = p[:, 4].view(n, 1, 1), p[:, 5].view(n, 1, 1)
    if c == 0:  # farmland: parallel stripes, 4-8 over the image
        return 0.5 + 0.5 * torch.sin(2 * math.pi * (1.0 + 1.2 * a) * u + 2 * math.pi * b)
    if c == 1:  # forest: blobby canopy with finer crowns
        return (0.7 * _sigmoid(coarse - 0.5, 10.0) + 0.3 * fine).clamp(0, 1)
    if c == 2:  # water: smooth, dark, with faint ripples
        return 0.35 * coarse + 0.3 * (0.5 + 0.5 * torch.sin(2 * math.pi * (4.0 + 3.0 * a) * u
                                                             + 2 * math.pi * b))
    if c == 3:  # dense urban: a grid of blocks between streets
        f = 1.6 + 1.2 * a
        bu, bv = torch.frac(u * f + b + 8), torch.frac(v * f + b + 8)
        return _sigmoid(0.72 - bu, 25.0) * _sigmoid(0.72 - bv, 25.0)
    if c == 4:  # roads: two crossing lines on fields
        w = 0.05 + 0.04 * b
        cu, cv = (a - 0.5) * 0.8, (p[:, 6].view(n, 1, 1) - 0.5) * 0.8
        road = torch.maximum(torch.exp(-((u - cu) / w) ** 2), torch.exp(-((v - cv) / w) ** 2))
        return torch.maximum(road, 0.25 * coarse)
    if c == 5:  # bare soil: fine grain
        return grain
    if c == 6:  # circular farmland: a centre-pivot disc
        r = torch.sqrt(u ** 2 + v ** 2)
        return _sigmoid(0.45 + 0.35 * a - r, 20.0)
    # coast: sand meeting sea along a wavy line
    return _sigmoid(u + 0.12 * torch.sin(3 * math.pi * v + 2 * math.pi * b), 12.0)


def render(seed: int, indices: torch.Tensor, num_classes: int, input_size: int,
           difficulty: float) -> torch.Tensor:
    """The samples ``indices`` as uint8 images ``[n, 3, s, s]``; a pure function of its
    arguments (each image of (seed, index, num_classes, input_size, difficulty))."""
    n, s, d = len(indices), input_size, float(difficulty)
    keys = sample_keys(seed, indices)
    labels = indices.to(torch.int64) % num_classes
    grid = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    coarse = _smooth(keys, _F_COARSE, _COARSE, s)
    fine = _smooth(keys, _F_FINE, _FINE, s)
    grain = _smooth(keys, _F_GRAIN, _GRAIN, s)
    mix = uniform(keys, _P_MIX, 2)
    if num_classes > 1:
        other = (labels + 1 + (mix[:, 1] * (num_classes - 1)).long().clamp(max=num_classes - 2)) % num_classes
    else:
        other = labels
    main_p, conf_p = uniform(keys, _P_MAIN, 8), uniform(keys, _P_CONF, 8)

    def scenes(cls: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        out = torch.empty(n, 3, s, s)
        for c in range(num_classes):
            m = cls == c
            if not bool(m.any()):
                continue
            pat = _pattern(c, p[m], x, y, coarse[m], fine[m], grain[m])
            contrast = 1.0 - 0.5 * d
            pat = (0.5 + (pat - 0.5) * contrast)[:, None]
            bg, fg = _PALETTE[c, 0].view(1, 3, 1, 1), _PALETTE[c, 1].view(1, 3, 1, 1)
            out[m] = bg + (fg - bg) * pat
        return out

    img = scenes(labels, main_p)
    overlap = (0.6 * d * mix[:, 0]).view(n, 1, 1, 1)
    img = (1 - overlap) * img + overlap * scenes(other, conf_p)
    jit = uniform(keys, _P_JITTER, 5)
    spread = 0.05 + 0.45 * d
    gain = 1 + (jit[:, 0:3] - 0.5) * 2 * spread                       # per channel
    bright = ((jit[:, 3] - 0.5) * 2 * spread * 0.5).view(n, 1, 1, 1)  # all channels
    img = img * gain.view(n, 3, 1, 1) + bright
    noise = gaussian(keys, _PIXELS, 3 * s * s).view(n, 3, s, s)
    sigma = (0.02 + 0.2 * d) * (0.5 + jit[:, 4]).view(n, 1, 1, 1)
    img = img + sigma * noise
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


class SyntheticRSData:
    """``samples`` scenes of the first ``num_classes`` of :data:`CLASSES` at
    ``input_size x input_size``; ``batch`` gives them normalised to mean 0, std ~1."""

    MEAN, STD = 0.45, 0.2

    def __init__(self, num_classes: int, input_size: int, samples: int, seed: int = 0,
                 difficulty: float = DEFAULT_DIFFICULTY):
        if not 2 <= num_classes <= len(CLASSES):
            raise ConfigError(
                f"train.dataset synthetic_rs has {len(CLASSES)} classes ({', '.join(CLASSES)}); "
                f"model.num_classes must be 2..{len(CLASSES)}, not {num_classes}")
        if not 0.0 <= difficulty <= 1.0:
            raise ConfigError(f"train.difficulty must be in [0, 1], not {difficulty}")
        self.num_classes, self.input_size, self.samples = num_classes, input_size, samples
        self.seed, self.difficulty = seed, float(difficulty)
        self.classes = CLASSES[:num_classes]
        self.test_indices: torch.Tensor | None = None
        self._cache: dict[int, torch.Tensor] | None = (
            {} if samples * 3 * input_size ** 2 <= CACHE_LIMIT_BYTES else None)

    def __len__(self) -> int:
        return self.samples

    @property
    def labels(self) -> torch.Tensor:
        return torch.arange(self.samples) % self.num_classes

    def _render(self, indices: torch.Tensor) -> torch.Tensor:
        return render(self.seed, indices, self.num_classes, self.input_size, self.difficulty)

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """The uint8 images ``[n, 3, s, s]`` of ``indices``."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        if self._cache is None:
            return self._render(indices)
        chunk = indices // CHUNK
        for c in torch.unique(chunk).tolist():
            if c not in self._cache:
                self._cache[c] = self._render(torch.arange(c * CHUNK, min((c + 1) * CHUNK, self.samples)))
        out = torch.empty(len(indices), 3, self.input_size, self.input_size, dtype=torch.uint8)
        for c in torch.unique(chunk).tolist():
            m = chunk == c
            out[m] = self._cache[c][indices[m] - c * CHUNK]
        return out

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.int64)
        x = self.images(indices).float() / 255.0
        return (x - self.MEAN) / self.STD, indices % self.num_classes
