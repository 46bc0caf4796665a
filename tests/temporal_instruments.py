"""Test instruments for the temporal stage: restorers whose change to the face is known, and
clips of a still or moving real face made in-process. None of them is a restoration."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gpen_video.backends.base import InputSpec, Restorer
from tests.geometry import face_photo
from tests.pipeline_helpers import face_scene, write_clip


class TextureRestorer(Restorer):
    """Adds the same fixed texture (in aligned crop space) to every face: detail that is
    consistent from frame to frame, attached to the face, which temporal smoothing must keep."""

    name = "texture-instrument"
    native = "numpy"

    def __init__(self, size: int, amplitude: float = 0.04, seed: int = 1) -> None:
        super().__init__(InputSpec(size=size))
        rng = np.random.default_rng(seed)
        self.texture = rng.normal(0.0, amplitude, (3, size, size)).astype(np.float32)

    def _restore_impl(self, batch: np.ndarray) -> np.ndarray:
        return np.clip(batch + self.texture[None], 0.0, 1.0)


class NoiseRestorer(Restorer):
    """Adds fresh Gaussian noise to every face on every call: detail invented differently in
    each frame (flicker), which temporal smoothing must damp."""

    name = "noise-instrument"
    native = "numpy"

    def __init__(self, size: int, sigma: float = 0.04, seed: int = 2) -> None:
        super().__init__(InputSpec(size=size))
        self.sigma = sigma
        self.rng = np.random.default_rng(seed)

    def _restore_impl(self, batch: np.ndarray) -> np.ndarray:
        noise = self.rng.normal(0.0, self.sigma, batch.shape).astype(np.float32)
        return np.clip(batch + noise, 0.0, 1.0)


def face_clip(testdata: Path, path: Path, moving: bool, n: int = 24) -> Path:
    """A real face (150 px) in a 384×288 frame, still or moving (≈ 3 px/frame across, a slow
    bob and a 4° sway), with fresh sensor noise (σ = 2/255) per frame; lossless PNG in .mov."""
    photo = face_photo(testdata)
    rng = np.random.default_rng(0)
    frames = []
    for t in range(n):
        if moving:
            center = (120.0 + 3.0 * t, 140.0 + 6.0 * math.sin(t / 4.0))
            degrees = 4.0 * math.sin(t / 6.0)
        else:
            center, degrees = (192.0, 140.0), 2.0
        img = face_scene(photo, 150, degrees, (288, 384), center)
        frames.append(np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8))
    return write_clip(path, frames)
