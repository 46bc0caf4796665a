"""Per-face, per-frame measures of temporal quality and detail (pure functions, numpy/OpenCV).

All of them work on aligned face crops: the source frame and the result frame are cropped with
the *same* matrix (the face track found on the source), so source and result are compared pixel
for pixel and the numbers do not depend on how large the face is in the frame.

* :func:`warping_error` — Lai et al., "Learning Blind Video Temporal Consistency" (ECCV 2018):
  optical flow from crop ``t+1`` to crop ``t`` computed on the **source** (so the result's own
  flicker cannot steer it), forward–backward occlusion check (Sundaram et al.: a pixel is
  occluded where ``|f + b|² > 0.01 (|f|² + |b|²) + 0.5``), then the mean squared difference
  between result ``t+1`` and result ``t`` warped along that flow, over the non-occluded pixels
  inside the face mask; the same number for the source is the reference. Values on the ``[0, 1]``
  RGB scale.
* :func:`sharpness` — variance of the Laplacian of the luma inside the face core.
* :func:`landmark_jitter` — frame-to-frame landmark acceleration (second difference) in units of
  the inter-ocular distance: smooth motion does not count, shaking does.

Conventions: crops ``S×S×3`` float32 RGB in ``[0, 1]``; masks ``S×S`` bool; flow vectors ``f``
satisfy ``current(x) ≈ previous(x + f(x))``, pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _gray_u8(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(crop * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


@dataclass(frozen=True)
class Flow:
    """Source flow from frame ``t+1`` back to frame ``t`` and the pixels it can be trusted on."""

    map_x: np.ndarray  # S×S float32: where each pixel of t+1 was in t
    map_y: np.ndarray
    valid: np.ndarray  # S×S bool: inside the crop and not occluded (forward–backward check)


class FlowEstimator:
    """OpenCV DIS (medium preset) with the forward–backward occlusion check."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> Flow:
        cur, prev = _gray_u8(current), _gray_u8(previous)
        h, w = cur.shape
        fwd = self._dis.calc(cur, prev, None)  # cur(x) ≈ prev(x + fwd(x))
        bwd = self._dis.calc(prev, cur, None)  # prev(y) ≈ cur(y + bwd(y))
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = gx + fwd[..., 0], gy + fwd[..., 1]
        bwd_at = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        total = fwd + bwd_at
        lhs = (total ** 2).sum(axis=2)
        rhs = 0.01 * ((fwd ** 2).sum(axis=2) + (bwd_at ** 2).sum(axis=2)) + 0.5
        inside = (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
        return Flow(mx, my, (lhs <= rhs) & inside)


def warping_error(flow: Flow, previous: np.ndarray, current: np.ndarray,
                  mask: np.ndarray) -> float | None:
    """Mean squared difference (RGB, ``[0, 1]`` scale) between ``current`` and ``previous``
    warped along ``flow``, over ``mask & flow.valid``; ``None`` when no pixel is left."""
    where = mask & flow.valid
    if not where.any():
        return None
    warped = cv2.remap(previous, flow.map_x, flow.map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return float(np.square(current - warped).mean(axis=2)[where].mean())


def sharpness(crop: np.ndarray, core: np.ndarray) -> float:
    """Variance of the Laplacian (3×3) of the luma (0–255 scale) over ``core``."""
    gray = cv2.cvtColor(crop.astype(np.float32), cv2.COLOR_RGB2GRAY) * 255.0
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    return float(lap[core].var())


def landmark_jitter(landmarks: list[np.ndarray | None]) -> list[float | None]:
    """Per frame ``t``: mean over the 5 points of ``|L[t+1] − 2L[t] + L[t−1]|`` divided by the
    inter-ocular distance at ``t`` (``None`` where a neighbour is missing; first and last frames
    ``None``). ``landmarks``: per frame a ``(5, 2)`` array or ``None`` (not detected)."""
    out: list[float | None] = [None] * len(landmarks)
    for t in range(1, len(landmarks) - 1):
        a, b, c = landmarks[t - 1], landmarks[t], landmarks[t + 1]
        if a is None or b is None or c is None:
            continue
        iod = float(np.hypot(*(b[1] - b[0])))
        if iod <= 0:
            continue
        out[t] = float(np.linalg.norm(c - 2.0 * b + a, axis=1).mean() / iod)
    return out
