"""Comparing a chunked render (``--workers N``) with a single run of the same job, frame by frame.

Used by ``tests/test_workers.py`` and ``benchmarks/workers_consistency.py``. The single run's
face footprints (each pasted crop's square mapped back into the frame, widened by
``FOOTPRINT_MARGIN`` pixels) come from its observer; outside them the two renders must hold the
same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gpen_video.media import VideoSource

FOOTPRINT_MARGIN = 3  # px around a crop's footprint still counted as "the face"


def footprint(shape: tuple[int, int], faces: list) -> np.ndarray:
    """Boolean H×W mask of the frame pixels covered by the pasted crops of ``faces``
    (``PastedFace`` records: 2×3 frame → crop matrix and crop size), widened by the margin."""
    mask = np.zeros(shape, np.uint8)
    for face in faces:
        s = face.crop_size
        inverse = cv2.invertAffineTransform(np.asarray(face.matrix, np.float64))
        corners = np.array([[0, 0], [s, 0], [s, s], [0, s]], np.float64)
        points = corners @ inverse[:, :2].T + inverse[:, 2]
        cv2.fillConvexPoly(mask, np.round(points).astype(np.int32), 1)
    k = 2 * FOOTPRINT_MARGIN + 1
    return cv2.dilate(mask, np.ones((k, k), np.uint8)).astype(bool)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images over all their pixels; inf when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def rms_change(a: np.ndarray, b: np.ndarray) -> float:
    """RMS (0–255 levels) of the change from image ``a`` to image ``b``."""
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@dataclass
class Comparison:
    """Per frame of two renders of one job: PSNR, the largest difference outside the faces,
    and each render's frame-to-frame change (RMS, from the previous frame; 0 for the first)."""

    psnr: list[float] = field(default_factory=list)
    outside_max: list[int] = field(default_factory=list)
    change_single: list[float] = field(default_factory=list)
    change_chunked: list[float] = field(default_factory=list)
    pts_single: list[int] = field(default_factory=list)
    pts_chunked: list[int] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.psnr)

    def step(self, index: int) -> float:
        """How much the chunked render's frame-to-frame change at ``index`` differs from the
        single run's (levels RMS)."""
        return abs(self.change_chunked[index] - self.change_single[index])

    def summary(self, borders: list[int]) -> dict:
        finite = [p for p in self.psnr if np.isfinite(p)]
        steps = [self.step(i) for i in range(1, self.frames)]
        return {"frames": self.frames, "worst_psnr": min(finite, default=float("inf")),
                "frames_below_40db": sum(p < 40.0 for p in self.psnr),
                "identical_frames": sum(not np.isfinite(p) for p in self.psnr),
                "outside_faces_max_diff": max(self.outside_max, default=0),
                "border_steps": {b: round(self.step(b), 4) for b in borders},
                "largest_step_elsewhere": round(max((s for i, s in enumerate(steps, 1)
                                                     if i not in borders), default=0.0), 4)}


def compare(single: Path, chunked: Path, faces: dict[int, list]) -> Comparison:
    """Compare two renders of one clip; ``faces``: the single run's pasted faces per frame."""
    out = Comparison()
    previous = None
    with VideoSource(single) as a, VideoSource(chunked) as b:
        for fa, fb in zip(a, b, strict=True):
            ia, ib = fa.image, fb.image
            out.psnr.append(psnr(ia, ib))
            outside = ~footprint(ia.shape[:2], faces.get(fa.index, []))
            diff = np.abs(ia.astype(np.int16) - ib.astype(np.int16)).max(axis=2)
            out.outside_max.append(int(diff[outside].max(initial=0)))
            out.pts_single.append(fa.pts)
            out.pts_chunked.append(fb.pts)
            if previous is None:
                out.change_single.append(0.0)
                out.change_chunked.append(0.0)
            else:
                out.change_single.append(rms_change(previous[0], ia))
                out.change_chunked.append(rms_change(previous[1], ib))
            previous = (ia, ib)
    return out


def single_run(args: list[str], threads: int = 1) -> dict[int, list]:
    """Render ``gpen-video ARGS`` in this process exactly as ``--workers 1`` does (the run
    command's options, :func:`gpen_video.pipeline.run`) with ``threads`` torch threads;
    returns the pasted faces per frame (from the observer)."""
    import argparse

    import torch

    from gpen_video import pipeline
    from gpen_video.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.configure(parser)
    parsed = parser.parse_args(args)
    options = run_command.options_from_args(parsed)
    faces: dict[int, list] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pipeline.run(options, observer=lambda index, pasted: faces.__setitem__(index, pasted))
    finally:
        torch.set_num_threads(before)
    return faces
