"""Paste restored faces back into the frame: soft mask, region-of-interest warps, one rounding.

Conventions (shared with :mod:`gpen_video.faces` alignment):

* Frames are numpy ``H×W×3`` RGB, ``uint8`` (8-bit sources) or ``uint16`` (deeper sources, full
  16-bit scale). Nothing else.
* A face's ``matrix`` ``M`` is 2×3 float64 and maps frame coordinates ``(x, y)`` to crop
  coordinates ``(u, v)``; pixel centres are at integer coordinates, so
  ``cv2.warpAffine(frame, M, (S, S), flags=cv2.INTER_LINEAR)`` is the aligned crop (we use
  :data:`INTERPOLATION`, bicubic, with the same geometry). Pasting samples the crop at ``M·(x, y)``
  for each frame pixel ``(x, y)`` of the face's region of interest
  (``cv2.warpAffine(..., flags=INTERPOLATION | WARP_INVERSE_MAP)`` with ``M`` shifted to the
  region's origin): the exact inverse of the crop warp, no ``align_corners`` question.
* Why bicubic: the warp → inverse-warp round trip through an identity restorer measured 45.1 /
  41.5 / 40.3 dB (bilinear) and 58.8 / 55.4 / 47.8 dB (bicubic) in the face core for 128 / 256 /
  512 px faces at 7°; and the round-trip error changes with the sub-pixel phase of the smoothed
  alignment, which shows as flicker on still faces — about a third less with bicubic. Bicubic
  overshoots, so crops and composites are clipped to the valid range.
* Restored crops are ``S×S×3`` float32 RGB in ``[0, 1]`` (HWC, as :func:`to_hwc` makes them
  from a restorer batch).

Guarantees:

* The soft mask is built once, in template (crop) space, and is exactly zero on a margin along the
  crop border, so the crop's edge never shows (no visible rectangle).
* Only each face's region of interest is warped (never a full-frame warp per face), and only
  pixels with alpha > 0 are written: every other pixel stays bit-identical to the input frame.
* Overlapping faces: coverage ``A = 1 − Π(1 − aᵢ)``, colour ``Σ aᵢ·cᵢ / Σ aᵢ`` — independent of
  the order of the faces, never darker or doubled where masks overlap.
* Compositing is in float32 and rounded once, to the frame's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

INTERPOLATION = cv2.INTER_CUBIC  # both warps (see the module docstring)
ALPHA_FLOOR = 1e-6  # warped alpha below this is bicubic ringing of the zero margin: not the face

FloatImage = np.ndarray  # H×W×C float32
Frame = np.ndarray  # H×W×3 uint8 | uint16, RGB


@dataclass(frozen=True)
class MaskShape:
    """The paste mask in normalised crop coordinates (``-1 … 1`` from the crop centre).

    ``r = (|x|^power + |y|^power)^(1/power)``; alpha is 1 for ``r ≤ inner``, 0 for
    ``r ≥ outer``, a raised-cosine ramp between. ``power`` 2 is an ellipse, larger values approach
    a rounded square. ``center_y`` shifts the shape down (the FFHQ template puts the face slightly
    below the centre).
    """

    inner: float = 0.72
    outer: float = 0.94
    power: float = 3.0
    center_y: float = 0.04


def template_mask(size: int, shape: MaskShape = MaskShape()) -> np.ndarray:
    """The ``size×size`` float32 alpha in ``[0, 1]`` of :class:`MaskShape`, in crop space."""
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    x = coords[None, :]
    y = coords[:, None] - shape.center_y
    r = (np.abs(x) ** shape.power + np.abs(y) ** shape.power) ** (1.0 / shape.power)
    t = np.clip((r - shape.inner) / (shape.outer - shape.inner), 0.0, 1.0)
    alpha = 0.5 + 0.5 * np.cos(np.pi * t)
    alpha[r <= shape.inner] = 1.0
    alpha[r >= shape.outer] = 0.0
    return alpha.astype(np.float32)


def face_coverage(warped_mask, factor):
    """A face's alpha over its region: the warped template mask × the face's factor (ramp ×
    strength), clipped to ``[0, 1]``, with values below :data:`ALPHA_FLOOR` set to exactly 0.

    The one rule both paste paths use — numpy here, torch tensors in
    :mod:`gpen_video.gpu_geometry` (the expression is written for either) — so both write
    exactly the same set of pixels (alpha > 0) and leave every other one untouched.
    """
    alpha = (warped_mask * factor).clip(0.0, 1.0)
    alpha[alpha < ALPHA_FLOOR] = 0.0
    return alpha


def to_hwc(batch: np.ndarray) -> np.ndarray:
    """``N×3×S×S`` → ``N×S×S×3`` (C-contiguous float32), for OpenCV."""
    return np.ascontiguousarray(np.asarray(batch, dtype=np.float32).transpose(0, 2, 3, 1))


def to_nchw(crops: np.ndarray) -> np.ndarray:
    """``N×S×S×3`` → ``N×3×S×S`` (C-contiguous float32), for a restorer."""
    return np.ascontiguousarray(np.asarray(crops, dtype=np.float32).transpose(0, 3, 1, 2))


def crop_face(frame: Frame, matrix: np.ndarray, size: int) -> FloatImage:
    """The aligned crop ``S×S×3`` float32 RGB in ``[0, 1]`` (bicubic, clipped; border reflected).

    ``matrix`` maps frame ``(x, y)`` to crop ``(u, v)``, pixel centres at integer coordinates.
    """
    m = np.asarray(matrix, dtype=np.float64)
    # only the frame pixels the crop samples (+3 px for the bicubic kernel) go to float32, so
    # the crop is not quantised and the cost does not grow with the frame
    inv = cv2.invertAffineTransform(m)
    edge = size - 1.0
    corners = np.array([[0, 0, 1], [edge, 0, 1], [0, edge, 1], [edge, edge, 1]]) @ inv.T
    h, w = frame.shape[:2]
    x0 = int(np.clip(math.floor(corners[:, 0].min()) - 3, 0, w - 1))
    y0 = int(np.clip(math.floor(corners[:, 1].min()) - 3, 0, h - 1))
    x1 = int(np.clip(math.ceil(corners[:, 0].max()) + 4, x0 + 1, w))
    y1 = int(np.clip(math.ceil(corners[:, 1].max()) + 4, y0 + 1, h))
    scale = np.float32(1.0 / float(np.iinfo(frame.dtype).max))
    sub = frame[y0:y1, x0:x1].astype(np.float32) * scale
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)  # sub (x, y) → crop (u, v)
    crop = cv2.warpAffine(sub, shifted, (size, size), flags=INTERPOLATION,
                          borderMode=cv2.BORDER_REFLECT101)
    return np.clip(crop, 0.0, 1.0, out=crop)


def ramp_alpha(since_start: int, until_end: int | None, ramp_frames: int) -> float:
    """Track fade-in/fade-out factor.

    ``since_start``: frames since the track's first frame (0 on it); ``until_end``: frames until
    its last frame (0 on it), or ``None`` when the end is not known yet. Ramps over
    ``ramp_frames`` frames: ``1/(R+1), 2/(R+1), …, 1``.
    """
    if ramp_frames <= 0:
        return 1.0
    a = min(1.0, (since_start + 1) / (ramp_frames + 1))
    if until_end is not None:
        a = min(a, (until_end + 1) / (ramp_frames + 1))
    return float(a)


@dataclass
class Paste:
    """One face to paste: its restored crop, its transform, and its alpha factor."""

    crop: FloatImage  # S×S×3 float32 RGB in [0, 1]
    matrix: np.ndarray  # 2×3 float64, frame (x, y) → crop (u, v)
    alpha: float = 1.0  # ramp × strength, in [0, 1]


@dataclass
class Region:
    """A rectangle ``[x0, x1) × [y0, y1)`` in frame pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    def overlaps(self, other: "Region") -> bool:
        return (self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1
                and other.y0 < self.y1)

    def union(self, other: "Region") -> "Region":
        return Region(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1),
                      max(self.y1, other.y1))

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


@dataclass
class Blender:
    """Pastes restored crops of size ``size`` into frames.

    Build once per run; :meth:`paste` is re-entrant (no state between calls).
    """

    size: int
    strength: float = 1.0
    shape: MaskShape = field(default_factory=MaskShape)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        self.mask = template_mask(self.size, self.shape)
        ys, xs = np.nonzero(self.mask > 0)
        # support of the mask in crop coordinates (pixel centres), one pixel of slack each side
        self._support = (float(xs.min()) - 1, float(ys.min()) - 1, float(xs.max()) + 1,
                         float(ys.max()) + 1)

    def region(self, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> Region:
        """Frame pixels the face's mask can touch, clipped to the frame (may be empty)."""
        inv = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
        u0, v0, u1, v1 = self._support
        corners = np.array([[u0, v0, 1], [u1, v0, 1], [u0, v1, 1], [u1, v1, 1]], dtype=np.float64)
        pts = corners @ inv.T
        h, w = frame_shape[:2]
        x0 = max(0, int(math.floor(pts[:, 0].min())) - 1)
        y0 = max(0, int(math.floor(pts[:, 1].min())) - 1)
        x1 = min(w, int(math.ceil(pts[:, 0].max())) + 2)
        y1 = min(h, int(math.ceil(pts[:, 1].max())) + 2)
        return Region(x0, y0, x1, y1)

    def warp_to_region(self, paste: Paste, region: Region) -> tuple[FloatImage, FloatImage]:
        """The crop and its alpha resampled onto ``region``'s pixels: (h×w×3, h×w) float32."""
        shift = np.array([[1.0, 0.0, region.x0], [0.0, 1.0, region.y0], [0.0, 0.0, 1.0]])
        m = np.asarray(paste.matrix, dtype=np.float64) @ shift  # region (x, y) → crop (u, v)
        rgba = np.concatenate([paste.crop.astype(np.float32, copy=False),
                               self.mask[:, :, None]], axis=2)
        warped = cv2.warpAffine(rgba, m, (region.x1 - region.x0, region.y1 - region.y0),
                                flags=INTERPOLATION | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        alpha = face_coverage(warped[:, :, 3], np.float32(paste.alpha * self.strength))
        return warped[:, :, :3], alpha

    def paste(self, frame: Frame, faces: list[Paste], inplace: bool = False) -> Frame:
        """Composite ``faces`` into ``frame``; returns the result (``frame`` itself if inplace).

        Only pixels with alpha > 0 are written; all others keep their exact input value.
        """
        if frame.dtype not in (np.uint8, np.uint16) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames are H×W×3 uint8/uint16 RGB, got {frame.dtype} {frame.shape}")
        out = frame if inplace else frame.copy()
        items = []
        for face in faces:
            if face.alpha <= 0.0 or self.strength <= 0.0:
                continue
            if face.crop.shape != (self.size, self.size, 3):
                raise ValueError(f"restored crops are {self.size}×{self.size}×3, got "
                                 f"{face.crop.shape}")
            reg = self.region(face.matrix, frame.shape)
            if not reg.empty:
                items.append((reg, face))
        for cluster_region, members in _clusters(items):
            self._composite(out, cluster_region, members)
        return out

    def _composite(self, out: Frame, reg: Region, members: list[tuple[Region, Paste]]) -> None:
        h, w = reg.y1 - reg.y0, reg.x1 - reg.x0
        maxval = np.float32(np.iinfo(out.dtype).max)
        if len(members) == 1:
            sub, face = members[0]
            color, coverage = self.warp_to_region(face, sub)
        else:
            weighted = np.zeros((h, w, 3), np.float32)
            total = np.zeros((h, w), np.float32)
            keep = np.ones((h, w), np.float32)  # Π (1 − aᵢ)
            for sub, face in members:
                c, a = self.warp_to_region(face, sub)
                ys = slice(sub.y0 - reg.y0, sub.y1 - reg.y0)
                xs = slice(sub.x0 - reg.x0, sub.x1 - reg.x0)
                weighted[ys, xs] += c * a[:, :, None]
                total[ys, xs] += a
                keep[ys, xs] *= 1.0 - a
            coverage = 1.0 - keep
            color = weighted / np.maximum(total, np.float32(1e-12))[:, :, None]
            sub = reg
        view = out[sub.y0:sub.y1, sub.x0:sub.x1]
        touched = coverage > 0
        if not touched.any():
            return
        src = view.astype(np.float32)
        np.clip(color, 0.0, 1.0, out=color)
        mixed = src + (color * maxval - src) * coverage[:, :, None]
        np.rint(mixed, out=mixed)
        np.clip(mixed, 0, maxval, out=mixed)
        # only pixels with alpha > 0 are written: every other one keeps its exact value
        np.copyto(view, mixed.astype(out.dtype), where=touched[:, :, None])


def _clusters(items: list[tuple[Region, Paste]]) -> list[tuple[Region, list[tuple[Region, Paste]]]]:
    """Group faces whose regions overlap (transitively); each group gets its bounding region."""
    groups: list[tuple[Region, list[tuple[Region, Paste]]]] = []
    for reg, face in items:
        merged_region, merged = reg, [(reg, face)]
        rest = []
        for g_region, g_members in groups:
            if g_region.overlaps(merged_region):
                merged_region = merged_region.union(g_region)
                merged = g_members + merged
            else:
                rest.append((g_region, g_members))
        # a merge can make the union overlap groups already passed over: repeat until stable
        changed = True
        while changed:
            changed = False
            still = []
            for g_region, g_members in rest:
                if g_region.overlaps(merged_region):
                    merged_region = merged_region.union(g_region)
                    merged = g_members + merged
                    changed = True
                else:
                    still.append((g_region, g_members))
            rest = still
        groups = rest + [(merged_region, merged)]
    return groups


class ColorMatcher:
    """Per-track colour matching of the restored crop to the source crop, smoothed over time.

    Per channel, the restored crop's mean and standard deviation inside the mask core are moved
    to the source crop's; the four statistics are smoothed with an exponential moving average
    (``smoothing`` = weight of the past) so the correction does not flicker. Works in aligned
    space, on ``S×S×3`` float32 RGB crops in ``[0, 1]``. Call :meth:`reset` at cuts.
    """

    def __init__(self, mask: np.ndarray, smoothing: float = 0.8) -> None:
        self.weights = (mask >= 0.999).astype(np.float32)
        if self.weights.sum() == 0:
            self.weights = mask.astype(np.float32)
        self.weights /= self.weights.sum()
        self.smoothing = smoothing
        self._stats: np.ndarray | None = None  # 4×3: mean_r, std_r, mean_s, std_s

    def reset(self) -> None:
        self._stats = None

    def _moments(self, crop: FloatImage) -> tuple[np.ndarray, np.ndarray]:
        w = self.weights[:, :, None]
        mean = (crop * w).sum(axis=(0, 1))
        var = (((crop - mean) ** 2) * w).sum(axis=(0, 1))
        return mean, np.sqrt(np.maximum(var, 1e-8))

    def __call__(self, restored: FloatImage, source: FloatImage) -> FloatImage:
        mr, sr = self._moments(restored)
        ms, ss = self._moments(source)
        stats = np.stack([mr, sr, ms, ss])
        if self._stats is None:
            self._stats = stats
        else:
            self._stats = self.smoothing * self._stats + (1.0 - self.smoothing) * stats
        mr, sr, ms, ss = self._stats
        gain = np.clip(ss / np.maximum(sr, 1e-4), 0.25, 4.0).astype(np.float32)
        out = (restored - mr.astype(np.float32)) * gain + ms.astype(np.float32)
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
