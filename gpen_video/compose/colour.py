"""Colour matching of restored crops to their source crops, per track, smoothed over time.

Crops are ``S×S×3`` float32 RGB in ``[0, 1]`` in aligned (crop) space, as everywhere in
:mod:`gpen_video.compose`.
"""

from __future__ import annotations

import numpy as np

FloatImage = np.ndarray  # S×S×3 float32


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
