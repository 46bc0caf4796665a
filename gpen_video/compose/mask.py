"""What both compositing paths share: the paste mask, its coverage rule, the regions it touches,
and the interpolation (the Convention of :mod:`gpen_video.compose`).

Everything here is written once and used by :mod:`~gpen_video.compose.reference` (OpenCV) and
:mod:`~gpen_video.compose.torch_impl` (torch), so the two paths write exactly the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

INTERPOLATION = "bicubic"  # both warps, both paths: "bicubic" or "bilinear" (see compose/__init__)
ALPHA_FLOOR = 1e-6  # warped alpha below this is bicubic ringing of the zero margin: not the face


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
    # a product, not alpha[alpha < floor] = 0: boolean indexing of a CUDA tensor waits for the GPU
    return alpha * (alpha >= ALPHA_FLOOR)


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



def mask_support(mask: np.ndarray) -> tuple[float, float, float, float]:
    """``(u0, v0, u1, v1)``: the mask's nonzero support in crop coordinates (pixel centres),
    one pixel of slack on each side."""
    ys, xs = np.nonzero(mask > 0)
    return float(xs.min()) - 1, float(ys.min()) - 1, float(xs.max()) + 1, float(ys.max()) + 1


def face_region(matrix: np.ndarray, support: tuple[float, float, float, float],
                frame_shape: tuple[int, ...]) -> Region:
    """Frame pixels a face's mask can touch (its ``support`` mapped through the inverse of the
    frame → crop ``matrix``), clipped to the frame; may be empty."""
    inv = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    u0, v0, u1, v1 = support
    corners = np.array([[u0, v0, 1], [u1, v0, 1], [u0, v1, 1], [u1, v1, 1]], dtype=np.float64)
    pts = corners @ inv.T
    h, w = frame_shape[:2]
    x0 = max(0, int(math.floor(pts[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(pts[:, 1].min())) - 1)
    x1 = min(w, int(math.ceil(pts[:, 0].max())) + 2)
    y1 = min(h, int(math.ceil(pts[:, 1].max())) + 2)
    return Region(x0, y0, x1, y1)
