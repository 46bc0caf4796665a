"""``measure(SOURCE, RESULT)``: how stable and how detailed the faces of a result video are,
relative to its source — for gpen-video's output or any other tool's (equal frame counts and
sizes are all it needs).

Faces are found and tracked on the **source** with the product's own detector, tracker and
alignment smoother (:mod:`gpen_video.faces`); each face of each frame is cropped from the source
and from the result with the same matrix (``crop_size`` px, :func:`gpen_video.compose.reference.crop_face`),
and the measures of :mod:`gpen_video.quality.metrics` are taken on those crop pairs. Landmark
jitter runs the detector on both videos (its raw per-frame landmarks, matched to the track). The
mean absolute change inside and outside the faces is taken on the full frames, with the paste
mask of each face (:func:`gpen_video.compose.mask.template_mask`) as "inside".

The warping error is taken at half the crop size (area-averaged, 128 px by default): at full
crop resolution it also counts pixel-level sensor and codec noise, which the paste's bicubic
round trip alone lowers, so an identity run read clearly below 1 there (measured 2026-11-28:
the git history of benchmarks/RESULTS.md, "gpen-video measure"); at half size what is left is flicker a viewer sees.

Ratios are result / source: 1.0 means "as stable / as sharp as the source". Per track, the
warping-error ratio is Σ result error / Σ source error over the track's frame pairs; the sharpness
ratio is the median of the per-frame ratios; the jitter ratio is mean / mean.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gpen_video.errors import UsageError
from gpen_video.options import DetectOptions, SmoothOptions, TrackOptions
from gpen_video.quality.metrics import (FlowEstimator, landmark_jitter, sharpness,
                                        warping_error)


@dataclass
class TrackCurves:
    """One face track's per-frame numbers (``None`` where a measure has no value)."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    warp_source: list[float | None] = field(default_factory=list)
    warp_result: list[float | None] = field(default_factory=list)
    sharp_source: list[float] = field(default_factory=list)
    sharp_result: list[float] = field(default_factory=list)
    marks_source: list[np.ndarray | None] = field(default_factory=list)
    marks_result: list[np.ndarray | None] = field(default_factory=list)
    change_inside: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class MeasureOptions:
    """How :func:`measure` finds faces (the product's defaults, detector on the CPU by default)."""

    detect: DetectOptions = DetectOptions()
    track: TrackOptions = TrackOptions()
    smooth: SmoothOptions = SmoothOptions()
    crop_size: int = 256  # aligned crop side the measures are taken on
    max_frames: int | None = None  # measure only N frames (from ``start``)
    start: int = 0  # the first frame measured (``measure --frames A-B``: A)


def _pairs(source: Path, result: Path, max_frames: int | None,
           start: int = 0) -> Iterator[tuple[Any, Any]]:
    from gpen_video.media import VideoSource
    from gpen_video.options import RangeOptions

    span = RangeOptions(start=start) if start else None
    with VideoSource(source, span) as a, VideoSource(result, span) as b:
        if (a.width, a.height) != (b.width, b.height):
            raise UsageError(f"{result} is {b.width}×{b.height} but {source} is "
                             f"{a.width}×{a.height}: measure compares videos of equal frames "
                             "(a --compare output holds both; measure the plain run instead)")
        ia, ib = iter(a), iter(b)
        n = 0
        while max_frames is None or n < max_frames:
            fa, fb = next(ia, None), next(ib, None)
            if fa is None and fb is None:
                return
            if fa is None or fb is None:
                raise UsageError(f"{source} and {result} have different frame counts "
                                 f"({n} frames read from both, then one ended): measure compares "
                                 "videos of equal frames")
            yield fa.image, fb.image
            n += 1


def _match(dets: list, landmarks: np.ndarray) -> np.ndarray | None:
    """The detection whose landmarks are nearest ``landmarks`` (within half an inter-ocular
    distance), or ``None``."""
    iod = float(np.hypot(*(landmarks[1] - landmarks[0])))
    best, best_d = None, 0.5 * iod
    for d in dets:
        dist = float(np.linalg.norm(d.landmarks - landmarks, axis=1).mean())
        if dist < best_d:
            best, best_d = np.array(d.landmarks), dist
    return best


class _Walker:
    """Consumes the frames the face stream releases and fills the per-track curves."""

    def __init__(self, size: int) -> None:
        from gpen_video.compose.mask import template_mask
        from gpen_video.compose.reference import Blender

        self.size = size
        mask = template_mask(size)
        self.core = mask >= 0.999
        self.warp_size = max(16, size // 2)
        self.small_mask = cv2.resize(mask, (self.warp_size, self.warp_size),
                                     interpolation=cv2.INTER_AREA) >= 0.5
        self.blender = Blender(size)
        self.flow = FlowEstimator()
        self.tracks: dict[int, TrackCurves] = {}
        self._prev: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self.inside: list[float] = []
        self.outside: list[float] = []
        self.frames = 0

    def frame(self, index: int, faces: Any, src: np.ndarray, res: np.ndarray,
              dets_src: list, dets_res: list) -> None:
        from gpen_video.compose.reference import crop_face
        from gpen_video.faces.align import params_to_matrix

        self.frames += 1
        cover = np.zeros(src.shape[:2], np.float32)
        scale = 255.0 / float(np.iinfo(src.dtype).max)
        diff = np.abs(res.astype(np.float32) - src.astype(np.float32)).mean(axis=2) * scale
        for face in faces:
            m = params_to_matrix(face.params, self.size)
            a, b = crop_face(src, m, self.size), crop_face(res, m, self.size)
            curves = self.tracks.setdefault(face.track_id, TrackCurves(face.track_id))
            prev = self._prev.get(face.track_id)
            we_a = we_b = None
            sa, sb = self._small(a), self._small(b)
            if prev is not None and prev[0] == index - 1:
                flow = self.flow(prev[1], sa)
                we_a = warping_error(flow, prev[1], sa, self.small_mask)
                we_b = warping_error(flow, prev[2], sb, self.small_mask)
            self._prev[face.track_id] = (index, sa, sb)
            curves.frames.append(index)
            curves.warp_source.append(we_a)
            curves.warp_result.append(we_b)
            curves.sharp_source.append(sharpness(a, self.core))
            curves.sharp_result.append(sharpness(b, self.core))
            curves.marks_source.append(_match(dets_src, np.asarray(face.landmarks)))
            curves.marks_result.append(_match(dets_res, np.asarray(face.landmarks)))
            alpha = self._coverage(m, src.shape)
            curves.change_inside.append(float(diff[alpha >= 0.5].mean())
                                        if (alpha >= 0.5).any() else 0.0)
            np.maximum(cover, alpha, out=cover)
        if (cover >= 0.5).any():
            self.inside.append(float(diff[cover >= 0.5].mean()))
        if (cover == 0).any():
            self.outside.append(float(diff[cover == 0].mean()))

    def _small(self, crop: np.ndarray) -> np.ndarray:
        return cv2.resize(crop, (self.warp_size, self.warp_size), interpolation=cv2.INTER_AREA)

    def _coverage(self, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        from gpen_video.compose.reference import Paste

        alpha = np.zeros(shape[:2], np.float32)
        region = self.blender.region(matrix, shape)
        if not region.empty:
            crop = np.zeros((self.size, self.size, 3), np.float32)
            _, a = self.blender.warp_to_region(Paste(crop, matrix, 1.0), region)
            alpha[region.y0:region.y1, region.x0:region.x1] = a
        return alpha


def walk(source: Path, result: Path, options: MeasureOptions = MeasureOptions(),
         detector: Any = None) -> _Walker:
    """Decode both videos, find and track faces on the source, and fill a :class:`_Walker`.

    Raises:
        UsageError: the videos differ in frame size or count.
        InputError: a video cannot be read.
    """
    from gpen_video.faces import FaceDetector, FaceStream
    from gpen_video.media import VideoSource

    with VideoSource(source) as probe:
        fps = float(probe.fps) if probe.fps else 25.0
    detector = detector if detector is not None else FaceDetector(options.detect)
    stream = FaceStream(options.track, options.smooth, fps=fps, crop_size=options.crop_size,
                        ramp_frames=0)
    walker = _Walker(options.crop_size)
    held: deque = deque()
    batch: list = []
    n = max(1, options.detect.batch)

    def flush(items: list) -> None:
        found = detector.detect([s for s, _ in items] + [r for _, r in items])
        for k, (s, r) in enumerate(items):
            held.append((s, r, found[k], found[len(items) + k]))
            release(stream.push(found[k], s))

    def release(ready: list) -> None:
        for ff in ready:
            s, r, ds, dr = held.popleft()
            walker.frame(ff.frame_index, ff.faces, s, r, ds, dr)

    for pair in _pairs(source, result, options.max_frames, options.start):
        batch.append(pair)
        if len(batch) >= n:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    release(stream.flush())
    return walker


def walk_frames(source: list, result: list, faces: list, crop_size: int = 256) -> _Walker:
    """A :class:`_Walker` over decoded frame pairs with known faces (no detector, no jitter)."""
    walker = _Walker(crop_size)
    for i, (s, r, f) in enumerate(zip(source, result, faces, strict=True)):
        walker.frame(i, f, s, r, [], [])
    return walker


def jitter_of(marks: list[np.ndarray | None]) -> float | None:
    values = [v for v in landmark_jitter(marks) if v is not None]
    return float(np.mean(values)) if values else None
