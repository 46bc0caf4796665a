"""Helpers for end-to-end tests: tiny GPEN checkpoints, clips made in-process, frame reading."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from gpen_video.options import (DetectOptions, EncodeOptions, ModelOptions, RangeOptions,
                                RestoreOptions, RunOptions, TemporalOptions)

def save_small_gpen(path: Path, seed: int = 0) -> Path:
    """The tests' small GPEN (:func:`tests.engine_helpers.small_gpen`) at 128 px, narrow 0.125
    (cheap enough per face for whole clips), saved as a checkpoint."""
    import torch

    from tests.engine_helpers import small_gpen

    torch.save(small_gpen(seed, size=128, narrow=0.125).state_dict(), path)
    return path


def run_options(testdata: Path, src: Path, out: Path, *, model: Path | None = None,
                backend: str = "torch", codec: str | None = None, frames: tuple | None = None,
                temporal: str = "residual", progress: str = "none", batch: int = 8,
                detect: DetectOptions | None = None, **kw) -> RunOptions:
    """Options for a CPU run with the real MobileNet detector."""
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    start, end = frames if frames is not None else (None, None)
    return RunOptions(
        input=src, output=out, progress=progress,
        model=(ModelOptions(name=model.stem, checkpoint_path=model) if model is not None
               else ModelOptions(name="GPEN-BFR-512")),
        restore=RestoreOptions(backend=backend, device="cpu", batch=batch),
        detect=detect or DetectOptions(network="mobile0.25", weights=weights, device="cpu"),
        temporal=TemporalOptions(mode=temporal),
        encode=EncodeOptions(codec=codec),
        range=RangeOptions(start=start, end=end),
        **kw,
    )


def write_clip(path: Path, frames: list[np.ndarray], codec: str = "png",
               pix_fmt: str = "rgb24", rate: int = 25, options: dict | None = None) -> Path:
    """Encode RGB uint8 frames (``png``/rgb24 in .mov is lossless: decoded frames are exact)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame.reformat(format=pix_fmt)))
        out.mux(stream.encode(None))
    return path


def read_frames(path: Path) -> list:
    """Every frame of ``path`` through the product's own decoder (upright RGB, with pts)."""
    from gpen_video.media import VideoSource

    with VideoSource(path) as source:
        return list(source)


def face_scene(photo: np.ndarray, face_px: int, degrees: float, frame_hw: tuple[int, int],
               center: tuple[float, float], background: np.ndarray | None = None) -> np.ndarray:
    """A frame with ``photo`` (an FFHQ-aligned face image) spanning ``face_px`` pixels,
    rotated by ``degrees`` about its centre, placed at ``center`` (x, y)."""
    h, w = frame_hw
    if face_px < photo.shape[0]:  # band-limit first, as a camera would (no aliasing)
        photo = cv2.resize(photo, (face_px, face_px), interpolation=cv2.INTER_AREA)
    side = photo.shape[0]
    s = face_px / side
    a = math.radians(degrees)
    rot = np.array([[s * math.cos(a), -s * math.sin(a)], [s * math.sin(a), s * math.cos(a)]])
    t = np.asarray(center) - rot @ np.array([(side - 1) / 2, (side - 1) / 2])
    m = np.hstack([rot, t[:, None]])
    if background is None:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        background = np.stack([90 + 40 * np.sin(xx / 23), 110 + 30 * np.cos(yy / 17),
                               100 + 20 * np.sin((xx + yy) / 31)], -1).astype(np.uint8)
    out = background.copy()
    warped = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpAffine(np.ones(photo.shape[:2], np.uint8), m, (w, h),
                            flags=cv2.INTER_NEAREST) > 0
    out[inside] = warped[inside]
    return out


def mask_union(pasted: list, shape: tuple[int, ...]) -> np.ndarray:
    """Frame-sized alpha coverage (max over faces) of the faces a run reported pasting."""
    from gpen_video.compose.reference import Blender, Paste

    cover = np.zeros(shape[:2], np.float32)
    blenders: dict[int, Blender] = {}
    for face in pasted:
        b = blenders.setdefault(face.crop_size, Blender(face.crop_size))
        region = b.region(face.matrix, shape)
        if region.empty:
            continue
        crop = np.zeros((face.crop_size, face.crop_size, 3), np.float32)
        _, alpha = b.warp_to_region(Paste(crop, face.matrix, 1.0), region)
        view = cover[region.y0:region.y1, region.x0:region.x1]
        np.maximum(view, alpha, out=view)
    return cover


def flicker(frames: list[np.ndarray], where: np.ndarray) -> float:
    """Mean absolute frame-to-frame difference (0–255) over the pixels ``where``."""
    diffs = [np.abs(b.astype(np.float32) - a.astype(np.float32))[where].mean()
             for a, b in zip(frames, frames[1:])]
    return float(np.mean(diffs))
