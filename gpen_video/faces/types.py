"""Named data of the faces stage: detections, similarity parameters, tracked faces.

Conventions (the same everywhere in :mod:`gpen_video.faces`):

* Coordinates are full-frame pixel coordinates ``(x, y)`` of the upright frame, float64, with
  pixel centres at integer coordinates (OpenCV convention): pixel ``(0, 0)`` covers
  ``[-0.5, 0.5]²``.
* Landmarks are ``(5, 2)``: left eye, right eye, nose, mouth left, mouth right, *as seen in the
  image* (index 0 is the eye on the image's left, i.e. the subject's right eye).
* Boxes are ``(x0, y0, x1, y1)`` in the same coordinates.
* A crop matrix ``M`` is 2×3 float64 and maps frame ``(x, y)`` to crop ``(u, v)``.

All arrays held by these dataclasses are read-only copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Landmarks = np.ndarray  # (5, 2) float64, frame pixels, order as in the module docstring
Box = np.ndarray  # (4,) float64: x0, y0, x1, y1
Matrix = np.ndarray  # (2, 3) float64: frame (x, y) -> crop (u, v)


def _frozen_array(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    array = np.array(value, dtype=np.float64, copy=True).reshape(shape)
    array.setflags(write=False)
    return array


def inter_ocular(landmarks: Landmarks) -> float:
    """Distance between the two eye landmarks, in the landmarks' units."""
    return float(math.hypot(*(landmarks[1] - landmarks[0])))


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found by the detector in one frame (full-frame coordinates)."""

    box: Box  # (4,) x0, y0, x1, y1
    score: float  # detector confidence in [0, 1]
    landmarks: Landmarks  # (5, 2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", _frozen_array(self.box, (4,)))
        object.__setattr__(self, "landmarks", _frozen_array(self.landmarks, (5, 2)))
        object.__setattr__(self, "score", float(self.score))

    @property
    def inter_ocular(self) -> float:
        """Eye-to-eye distance in frame pixels."""
        return inter_ocular(self.landmarks)


@dataclass(frozen=True)
class SimilarityParams:
    """A face's alignment as 4 numbers, independent of the crop size.

    ``center``: the frame point that lands on the crop centre (``(256, 256)`` in a 512 crop,
    ``(S/2, S/2)`` in an ``S`` crop); ``width``: how many frame pixels the crop's side spans;
    ``angle``: direction of the crop's u axis in the frame, radians, measured from +x towards +y
    (clockwise on screen, since y points down); 0 for an upright face. Angles of a track are
    unwrapped (continuous, not limited to ``(-π, π]``). See
    :func:`gpen_video.faces.align.params_to_matrix`.
    """

    cx: float
    cy: float
    width: float
    angle: float


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """One face of one output frame, as the pipeline consumes it.

    ``matrix`` is the (smoothed) 2×3 frame→crop transform for a ``crop_size`` crop; for another
    size use ``faces.align.params_to_matrix(params, size)`` (the template scales linearly).
    ``landmarks`` are the detector's landmarks on frames where the face was detected
    (``detected``), else the template mapped back through the smoothed transform. ``alpha_hint`` is the paste ramp factor in
    ``(0, 1]``: it ramps in over the first frames of a track and out over its last ones, except
    where the track begins or ends with the shot (stream start/end or a cut), where the face does
    not pop and no ramp is needed. ``frames_to_end`` is ``None`` when the track's end is not known
    when the frame is emitted (it is still alive beyond the look-ahead window).
    """

    track_id: int
    frame_index: int
    matrix: Matrix  # (2, 3) smoothed, for crop_size
    crop_size: int
    params: SimilarityParams  # the smoothed alignment, crop-size independent
    landmarks: Landmarks  # (5, 2)
    detected: bool  # a detection was assigned to this track on this frame
    score: float  # detector score on this frame (0.0 where not detected)
    confirmed: bool  # always True in FaceStream output (unconfirmed tracks are never emitted)
    is_start: bool  # first emitted frame of this track
    is_end: bool  # last emitted frame of this track
    frames_since_start: int  # 0 on the first emitted frame
    frames_to_end: int | None  # 0 on the last frame; None when the end is not known yet
    alpha_hint: float  # paste ramp factor in (0, 1]
    box: Box | None = None  # the detector's box on frames where the face was detected, else None

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", _frozen_array(self.matrix, (2, 3)))
        object.__setattr__(self, "landmarks", _frozen_array(self.landmarks, (5, 2)))
        if self.box is not None:
            object.__setattr__(self, "box", _frozen_array(self.box, (4,)))


@dataclass(frozen=True)
class FrameFaces:
    """Everything the faces stage says about one frame, emitted once and final."""

    frame_index: int
    faces: tuple[TrackedFace, ...] = field(default_factory=tuple)
    cut: bool = False  # this frame starts a new shot (a cut was detected before it)
