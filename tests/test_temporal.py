"""Residual temporal smoothing of restored crops (crops cut from a real photo).

The "restorers" here are test instruments for the temporal stage, not restorations: the identity
(restored == source), a fixed texture added in aligned space (consistent detail that must
survive), and fresh Gaussian noise per frame (invented detail that must be damped).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from gpen_video.compose.temporal import ResidualSettings, TemporalSmoother
from tests.geometry import face_photo, psnr

SIZE = 128


def _crop(photo: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A SIZE crop of the photo (downscaled to 2·SIZE) shifted by (dx, dy) px, float32 [0, 1]."""
    small = cv2.resize(photo, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_AREA)
    m = np.array([[1.0, 0.0, SIZE / 2 + dx], [0.0, 1.0, SIZE / 2 + dy]])  # the middle
    crop = cv2.warpAffine(small, m, (SIZE, SIZE), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT101)
    return np.clip(crop.astype(np.float32) / 255.0, 0, 1)


def _texture(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.04, (SIZE, SIZE, 3))).astype(np.float32)


def _inner(x: np.ndarray) -> np.ndarray:
    return x[20:SIZE - 20, 20:SIZE - 20]


def _flicker(frames: list[np.ndarray]) -> float:
    """Mean squared frame-to-frame difference in the inner crop."""
    return float(np.mean([np.square(_inner(b) - _inner(a)).mean()
                          for a, b in zip(frames, frames[1:])]))


def _jitter(t: int) -> tuple[float, float]:
    """A still face seen through a jittering alignment: ±0.4 px, deterministic."""
    return 0.4 * np.sin(1.7 * t), 0.4 * np.cos(2.3 * t)


def test_unchanged_face_passes_through_bit_identical(testdata):
    photo = face_photo(testdata)
    smoother = TemporalSmoother(SIZE)
    for t in range(10):
        crop = _crop(photo, 1.5 * t, -0.5 * t)
        out = smoother(1, crop, crop.copy())
        assert np.array_equal(out, crop)


@pytest.mark.parametrize("path", ["jitter", "drift"])
def test_fixed_texture_survives_fresh_noise_is_damped(testdata, path):
    """A still face seen through a jittering alignment, or drifting 1 px/frame in the crop."""
    photo = face_photo(testdata)
    rng = np.random.default_rng(0)
    tex = _texture()
    smoother_tex, smoother_noise = TemporalSmoother(SIZE), TemporalSmoother(SIZE)
    kept, noisy_in, noisy_out = [], [], []
    for t in range(24):
        src = _crop(photo, *(_jitter(t) if path == "jitter" else (1.0 * t, 0.3 * t)))
        textured = np.clip(src + tex, 0, 1)  # what temporal "off" would paste
        added = _inner(textured - src)
        out = smoother_tex(1, src, textured)
        kept.append(float((_inner(out - src) * added).sum() / np.square(added).sum()))
        restored = src + rng.normal(0, 0.03, src.shape).astype(np.float32)
        noisy_in.append(restored - src)
        noisy_out.append(smoother_noise(2, src, restored) - src)
    assert min(kept) >= 0.95, kept
    assert _flicker(noisy_out) <= 0.5 * _flicker(noisy_in)


def test_what_the_restorer_removes_stays_removed(testdata):
    """A denoising instrument (it returns the clean face whatever noise the input has): the
    smoother must not put the input's per-frame noise back by carrying the residual."""
    photo = face_photo(testdata)
    rng = np.random.default_rng(4)
    clean = _crop(photo)
    smoother = TemporalSmoother(SIZE)
    inputs, outputs = [], []
    for _ in range(16):
        noisy = np.clip(clean + rng.normal(0, 0.012, clean.shape), 0, 1).astype(np.float32)
        inputs.append(noisy)
        outputs.append(smoother(1, noisy, clean.copy()))
    assert _flicker(outputs) <= 0.05 * _flicker(inputs)


def test_translation_follows_the_input(testdata):
    """A face drifting 0.8 px/frame in the crop: the estimate finds the drift (gate pixels)."""
    from gpen_video.compose.temporal import _ReferenceOps

    photo = face_photo(testdata)
    ops = _ReferenceOps(SIZE, SIZE, ResidualSettings())
    d = ops.translation(ops.luma(_crop(photo, 0.8, -0.3)), ops.luma(_crop(photo)))
    assert np.allclose(d, [0.8, -0.3], atol=0.05), d


def test_scene_change_and_reset_take_the_current_restoration(testdata):
    photo = face_photo(testdata)
    smoother = TemporalSmoother(SIZE)
    a = _crop(photo)
    b = np.ascontiguousarray(a[::-1, ::-1])  # different content, same statistics
    smoother(3, a, a + _texture())
    current = np.clip(b + _texture(2), 0, 1)
    out = smoother(3, b, current)  # the input changed almost everywhere: trust ≈ 0 there
    assert psnr(_inner(out), _inner(current), 1.0) > 32.0  # the texture alone: 28.5 dB
    smoother.reset(3)
    restored = b * 0.5
    assert smoother(3, a, restored) is restored  # first frame after a reset: as restored
    smoother.reset()
    assert smoother(4, a, a) is a


@pytest.mark.parametrize("motion", ["translation", "none"])
def test_torch_matches_reference(testdata, motion):
    photo = face_photo(testdata)
    rng = np.random.default_rng(3)
    settings = ResidualSettings(motion=motion, gate_size=64)
    ref = TemporalSmoother(SIZE, settings=settings, impl="reference")
    tch = TemporalSmoother(SIZE, settings=settings, impl="torch")
    worst = 0.0
    for t in range(8):
        src = _crop(photo, 0.6 * t, 0.2 * t)
        restored = np.clip(src + rng.normal(0, 0.03, src.shape), 0, 1).astype(np.float32)
        a = ref(5, src, restored)
        b = tch(5, torch.from_numpy(src).permute(2, 0, 1), torch.from_numpy(restored)
                .permute(2, 0, 1))
        assert isinstance(b, torch.Tensor) and b.shape == (3, SIZE, SIZE)
        worst = max(worst, float(np.abs(b.permute(1, 2, 0).numpy() - a).max()))
    assert worst < 2e-4, worst


def test_off_is_exactly_the_restoration():
    smoother = TemporalSmoother(SIZE, "off")
    x = np.random.default_rng(0).random((SIZE, SIZE, 3), dtype=np.float32)
    assert smoother(0, x, x) is x and smoother(0, x, x * 0.5) is not x
    with pytest.raises(ValueError, match="residual, off"):
        TemporalSmoother(SIZE, "fancy")
    with pytest.raises(ValueError, match="auto, reference, torch"):
        TemporalSmoother(SIZE, impl="cuda")
