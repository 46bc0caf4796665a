"""Faces: found (RetinaFace), followed (tracks with persistent IDs), aligned stably (Kalman/RTS).

Contract with the rest of the product
=====================================

Frames
    numpy ``H×W×3`` **RGB**, ``uint8`` or ``uint16`` (deep sources; converted to 8 bits for
    detection only), upright (rotation already applied). RetinaFace wants BGR: the detector
    converts, callers never do.

Coordinates
    Full-frame pixel coordinates ``(x, y)``, float64, pixel centres at integer coordinates
    (OpenCV convention: pixel ``(0, 0)`` covers ``[-0.5, 0.5]²``).

Landmarks
    ``(5, 2)`` float64: left eye, right eye, nose, mouth left, mouth right **as seen in the
    image** (index 0 is the eye on the image's left).

Alignment
    ``similarity_to_template(landmarks, crop_size) -> M``: ``M`` is 2×3 float64, frame → crop,
    a least-squares similarity (Umeyama; no LMEDS) to GPEN's 512 template
    ``(202.0407, 242.8840), (309.4302, 242.2900), (256.0768, 303.9592), (211.9598, 366.8282),
    (300.8911, 366.3363)`` scaled by ``S/512``. ``cv2.warpAffine(frame, M, (S, S),
    flags=cv2.INTER_LINEAR)`` is the aligned crop; ``invert_affine(M)`` the exact inverse
    (crop → frame; or warp with ``cv2.WARP_INVERSE_MAP`` and ``M`` itself).

Detection
    ``FaceDetector(DetectOptions)``; ``detect(frames) -> list[list[Detection]]`` (one list per
    frame, best score first). :class:`Detection`: ``box`` (x0, y0, x1, y1), ``score``,
    ``landmarks``. Missing weights raise :class:`~gpen_video.errors.WeightsError` with one line
    naming the file, where it was looked for, and ``--detector-weights PATH``. The network's
    raw outputs become pixels through :mod:`~gpen_video.faces.priors`.

Tracking, smoothing, timing
    ``FaceStream(TrackOptions, SmoothOptions, fps, crop_size, ramp_frames, detect_every)``.
    ``push(detections | None, frame=None, cut=None) -> list[FrameFaces]`` once per frame in
    order; ``flush() -> list[FrameFaces]`` at the end. Each frame comes back exactly once,
    ``stream.delay`` frames later, final. :class:`FrameFaces` ``(frame_index, faces, cut)``;
    each :class:`TrackedFace` has ``track_id``, ``frame_index``, ``matrix`` (smoothed, for
    ``crop_size``; ``params_to_matrix(params, S)`` for another size), ``params``,
    ``landmarks``, ``detected``, ``score``, ``confirmed``, ``is_start``/``is_end``, ``frames_since_start``,
    ``frames_to_end``, ``alpha_hint`` (paste ramp) and ``box`` (the detector's, where
    detected). Tracks never continue across a cut; tracks that end unconfirmed are never
    emitted.

Track ids, selection, the faces file
    The tracker's ids have gaps; users see 1, 2, 3 … in order of first appearance
    (:mod:`~gpen_video.faces.selection`, which also selects faces: ``--tracks``,
    ``--skip-tracks``, ``--faces largest``). :mod:`~gpen_video.faces.faces_file` writes and
    reads what the faces stage emitted (``gpen-video analyse``, ``--faces-from``), exactly;
    :mod:`~gpen_video.faces.sheet` draws the contact sheet to choose tracks from.

Detection scheduling
    ``FaceAnalyser(detector, stream, DetectOptions, cut_threshold, fps, clock)`` sits in front
    of the stream: ``push(frames) -> list[FrameFaces]``, ``flush()``. In the default ``tracked``
    mode each tracked face is re-detected in a window around its prediction
    (:mod:`~gpen_video.faces.window_detect`) and the whole frame is scanned only every few
    frames, at cuts and when a face is lost (:mod:`~gpen_video.faces.schedule`,
    :mod:`~gpen_video.faces.scan_plan`); ``full`` detects every frame whole.

Everything here except :class:`FaceDetector` (torch, facexlib) imports only numpy, scipy,
OpenCV and filterpy; the detector is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpen_video.faces.align import (
    FFHQ_TEMPLATE_512,
    TEMPLATE_IOD_512,
    apply_affine,
    face_size,
    invert_affine,
    landmarks_to_params,
    matrix_to_params,
    params_to_matrix,
    similarity_to_template,
    template_in_frame,
    template_points,
    umeyama,
    warp_to_crop,
)
from gpen_video.faces.cuts import CutDetector
from gpen_video.faces.smooth import METHODS as SMOOTH_METHODS
from gpen_video.faces.smooth import SmoothTuning, TrackSmoother
from gpen_video.faces.stream import FaceStream
from gpen_video.faces.track import FaceTracker
from gpen_video.faces.types import Detection, FrameFaces, SimilarityParams, TrackedFace

if TYPE_CHECKING:
    from gpen_video.faces.detect import FaceDetector, find_detector_weights

__all__ = [
    "CutDetector", "Detection", "FFHQ_TEMPLATE_512", "FaceDetector", "FaceStream", "FaceTracker",
    "FrameFaces", "SMOOTH_METHODS", "SimilarityParams", "SmoothTuning", "TEMPLATE_IOD_512",
    "TrackSmoother", "TrackedFace", "apply_affine", "face_size", "find_detector_weights",
    "invert_affine", "landmarks_to_params", "matrix_to_params", "params_to_matrix",
    "similarity_to_template", "template_in_frame", "template_points", "umeyama",
    "warp_to_crop",
]


def __getattr__(name: str):
    if name in ("FaceDetector", "find_detector_weights"):
        from gpen_video.faces import detect

        return getattr(detect, name)
    raise AttributeError(f"module 'gpen_video.faces' has no attribute {name!r}")
