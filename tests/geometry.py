"""Synthetic frames and face transforms for geometry tests (shared by several test files)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np


def face_photo(testdata: Path) -> np.ndarray:
    """A real 1024×1024 RGB face photo (FFHQ, from the GPEN repository)."""
    bgr = cv2.imread(str(testdata / "images" / "gpen_ffhq-10_00004.png"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def similarity(center: tuple[float, float], face_px: float, crop: int, degrees: float) -> np.ndarray:
    """2×3 frame → crop matrix: ``face_px`` frame pixels across become ``crop`` pixels, rotated
    by ``degrees``, ``center`` (frame coords) landing on the crop centre. Pixel centres at
    integer coordinates."""
    s = crop / face_px
    a = math.radians(degrees)
    rot = np.array([[s * math.cos(a), -s * math.sin(a)], [s * math.sin(a), s * math.cos(a)]])
    t = np.array([(crop - 1) / 2.0, (crop - 1) / 2.0]) - rot @ np.asarray(center, np.float64)
    return np.hstack([rot, t[:, None]])


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two arrays (``inf`` when identical); ``peak`` the value range's span."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def facexlib_decode(cfg: dict, height: int, width: int, loc, landm):
    """RetinaFace outputs decoded by facexlib (the reference for ``gpen_video.faces.priors``),
    in unit coordinates and scaled to pixels as its callers do: boxes ``N×P×4``, landmarks
    ``N×P×5×2``."""
    import torch
    from facexlib.detection.retinaface_utils import PriorBox, batched_decode, batched_decode_landm

    unit = PriorBox(cfg, image_size=(height, width)).forward()[None]
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    boxes = batched_decode(loc, unit, cfg["variance"]) * scale
    points = batched_decode_landm(landm, unit, cfg["variance"]).view(
        loc.shape[0], -1, 5, 2) * scale[:2]
    return boxes, points
