"""Flow-guided temporal smoothing of restored crops (synthetic crops cut from a real photo)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gpen_video.compose.temporal import TemporalSmoother
from tests.geometry import face_photo, psnr

SIZE = 128


def _crop(photo: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A SIZE crop of the photo (downscaled to 2·SIZE) shifted by (dx, dy) px, float32 [0, 1]."""
    small = cv2.resize(photo, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_AREA)
    m = np.array([[1.0, 0.0, -SIZE / 2 + dx], [0.0, 1.0, -SIZE / 2 + dy]])
    crop = cv2.warpAffine(small, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT101)
    return crop.astype(np.float32) / 255.0


def _flicker(frames: list[np.ndarray]) -> float:
    inner = slice(16, SIZE - 16)
    return float(np.mean([np.abs(b[inner, inner] - a[inner, inner]).mean()
                          for a, b in zip(frames, frames[1:])]))


def test_still_face_flicker_is_reduced(testdata):
    photo = face_photo(testdata)
    rng = np.random.default_rng(0)
    still = _crop(photo)
    smoother = TemporalSmoother(SIZE, "flow")
    off, on = [], []
    for _ in range(20):
        source = np.clip(still + rng.normal(0, 1.5 / 255, still.shape), 0, 1).astype(np.float32)
        restored = np.clip(still + rng.normal(0, 0.03, still.shape), 0, 1).astype(np.float32)
        off.append(restored)
        on.append(smoother(7, source, restored))
    assert _flicker(on) < 0.6 * _flicker(off)


def test_moving_face_does_not_ghost(testdata):
    photo = face_photo(testdata)
    smoother = TemporalSmoother(SIZE, "flow")
    worst = np.inf
    for t in range(12):
        restored = _crop(photo, dx=2.5 * t, dy=-1.0 * t)  # identity restorer on a pan
        out = smoother(1, restored, restored)
        inner = slice(20, SIZE - 20)
        worst = min(worst, psnr(out[inner, inner], restored[inner, inner], 1.0))
    assert worst > 33.0


def test_scene_change_and_reset_take_the_current_restoration(testdata):
    photo = face_photo(testdata)
    smoother = TemporalSmoother(SIZE, "flow")
    a = _crop(photo)
    b = np.ascontiguousarray(a[::-1, ::-1])  # different content, same statistics
    smoother(3, a, a)
    out = smoother(3, b, b)  # flow cannot explain b from a: trust drops to ~0
    assert psnr(out[8:-8, 8:-8], b[8:-8, 8:-8], 1.0) > 30.0
    smoother.reset(3)
    assert smoother(3, a, b) is b  # first frame after a reset: as restored
    smoother.reset()
    assert smoother(4, a, a) is a


def test_off_is_exactly_the_restoration():
    smoother = TemporalSmoother(SIZE, "off")
    x = np.random.default_rng(0).random((SIZE, SIZE, 3), dtype=np.float32)
    assert smoother(0, x, x) is x and smoother(0, x, x * 0.5) is not x
    with pytest.raises(ValueError, match="flow, off"):
        TemporalSmoother(SIZE, "fancy")
