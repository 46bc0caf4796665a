"""5-point alignment to the FFHQ template: least-squares similarity (Umeyama), warps, parameters.

Conventions:

* Frame and crop coordinates are pixel coordinates with pixel centres at integers (OpenCV):
  ``cv2.warpAffine(frame, M, (S, S))`` samples the frame at ``M⁻¹·(u, v)`` for each crop pixel
  ``(u, v)`` — no ``align_corners`` question. The restorer's crops are made by
  :mod:`gpen_video.compose` (bicubic); :func:`warp_to_crop` here is the detector's own bilinear
  crop for its refine pass.
* ``M`` is 2×3 float64 and maps frame ``(x, y)`` → crop ``(u, v)``: ``[u, v]ᵀ = M·[x, y, 1]ᵀ``.
  It is always a similarity (rotation, uniform scale, translation; never a reflection).
* The template is GPEN's (facexlib ``FaceRestoreHelper``) 512-pixel template; for a crop of size
  ``S`` its points are scaled linearly, ``p·S/512`` (as the official code does), so
  ``M_S = (S/512)·M_512`` entry by entry and one alignment serves every crop size.
* Landmark order: left eye, right eye, nose, mouth left, mouth right, as seen in the image.

The fit is plain least squares over the 5 points (Umeyama 1991, without reflection), not
OpenCV's LMEDS, which picks a different subset of points from frame to frame and makes a still
face shake.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from gpen_video.faces.types import Landmarks, Matrix, SimilarityParams

TEMPLATE_SIZE = 512
#: GPEN's 5-point template for a 512×512 crop (x, y), order as in the module docstring.
FFHQ_TEMPLATE_512 = np.array(
    [
        [202.0407, 242.8840],
        [309.4302, 242.2900],
        [256.0768, 303.9592],
        [211.9598, 366.8282],
        [300.8911, 366.3363],
    ],
    dtype=np.float64,
)
FFHQ_TEMPLATE_512.setflags(write=False)
#: Eye-to-eye distance of the 512 template, in crop pixels (≈ 107.39).
TEMPLATE_IOD_512 = float(np.hypot(*(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0])))


def template_points(crop_size: int = TEMPLATE_SIZE) -> Landmarks:
    """The template for an ``crop_size``² crop: the 512 template scaled by ``crop_size/512``."""
    if crop_size <= 0:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    return FFHQ_TEMPLATE_512 * (crop_size / TEMPLATE_SIZE)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> Matrix:
    """Least-squares similarity ``T`` (2×3) minimising ``Σ wᵢ‖dstᵢ − T·srcᵢ‖²``.

    Umeyama's closed form (IEEE PAMI 13(4), 1991) in 2-D, with the reflection excluded. ``src``
    and ``dst`` are ``(N, 2)`` with ``N ≥ 2`` and ``src`` not all one point.

    Raises:
        ValueError: shapes differ, fewer than 2 points, or ``src`` is degenerate.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"umeyama needs two (N, 2) arrays with N >= 2, got {src.shape} "
                         f"and {dst.shape}")
    if weights is None:
        w = np.full(src.shape[0], 1.0 / src.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        w = w / w.sum()
    mu_src = w @ src
    mu_dst = w @ dst
    src_c = src - mu_src
    dst_c = dst - mu_dst
    var_src = float(w @ np.sum(src_c * src_c, axis=1))
    if not var_src > 1e-12:
        raise ValueError("umeyama: the source points coincide")
    cov = (dst_c * w[:, None]).T @ src_c  # 2×2, Σ wᵢ dstᵢ srcᵢᵀ
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0
    rotation = (u * sign) @ vt
    scale = float(np.sum(d * sign) / var_src)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_dst - scale * rotation @ mu_src
    return matrix


def similarity_to_template(landmarks: Landmarks, crop_size: int = TEMPLATE_SIZE) -> Matrix:
    """The frame→crop matrix ``M`` (2×3 float64) aligning ``landmarks`` to the template.

    ``landmarks``: ``(5, 2)`` full-frame pixel coordinates (pixel centres at integers). Then
    ``cv2.warpAffine(frame, M, (S, S), flags=cv2.INTER_LINEAR)`` with ``S = crop_size`` is the
    aligned crop and :func:`invert_affine` gives the exact way back.

    Raises:
        ValueError: landmarks not ``(5, 2)`` or all in one point.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2), got {landmarks.shape}")
    return umeyama(landmarks, template_points(crop_size))


def invert_affine(matrix: Matrix) -> Matrix:
    """The exact inverse of a 2×3 affine map (float64): crop ``(u, v)`` → frame ``(x, y)``.

    Raises:
        ValueError: the matrix is singular.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    linear = matrix[:, :2]
    det = float(np.linalg.det(linear))
    if abs(det) < 1e-18:
        raise ValueError("invert_affine: singular matrix")
    inverse = np.empty((2, 3), dtype=np.float64)
    inverse[:, :2] = np.linalg.inv(linear)
    inverse[:, 2] = -inverse[:, :2] @ matrix[:, 2]
    return inverse


def apply_affine(matrix: Matrix, points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points mapped through a 2×3 matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def matrix_to_params(matrix: Matrix, crop_size: int = TEMPLATE_SIZE) -> SimilarityParams:
    """The crop-size independent parameters of a similarity ``matrix`` for an ``S`` crop.

    ``angle`` is returned in ``(-π, π]``; trackers unwrap it.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    a, b = matrix[0, 0], matrix[1, 0]  # A = k·[[cos φ, sin φ], [−sin φ, cos φ]]
    k = math.hypot(a, b)
    angle = math.atan2(-b, a)
    half = np.array([crop_size / 2.0, crop_size / 2.0])
    center = np.linalg.solve(matrix[:, :2], half - matrix[:, 2])
    return SimilarityParams(float(center[0]), float(center[1]), float(crop_size / k), angle)


def params_to_matrix(params: SimilarityParams, crop_size: int = TEMPLATE_SIZE) -> Matrix:
    """The frame→crop matrix for ``params`` and an ``S = crop_size`` crop.

    ``M·(x, y) = (S/width)·R(−angle)·((x, y) − center) + (S/2, S/2)``.
    """
    k = crop_size / params.width
    c, s = math.cos(params.angle), math.sin(params.angle)
    linear = k * np.array([[c, s], [-s, c]])
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = linear
    matrix[:, 2] = np.array([crop_size / 2.0, crop_size / 2.0]) - linear @ np.array(
        [params.cx, params.cy])
    return matrix


def landmarks_to_params(landmarks: Landmarks) -> SimilarityParams:
    """The alignment parameters of 5 landmarks (least-squares fit to the template)."""
    return matrix_to_params(similarity_to_template(landmarks, TEMPLATE_SIZE), TEMPLATE_SIZE)


def template_in_frame(params: SimilarityParams) -> Landmarks:
    """Where the template's 5 points lie in the frame for this alignment ``(5, 2)``."""
    inverse = invert_affine(params_to_matrix(params, TEMPLATE_SIZE))
    return apply_affine(inverse, FFHQ_TEMPLATE_512)


def face_size(landmarks: Landmarks) -> float:
    """Frame pixels spanned by the side of the aligned crop of these landmarks (≈ 4.8× IOD)."""
    return landmarks_to_params(landmarks).width


def warp_to_crop(
    frame: np.ndarray,
    matrix: Matrix,
    crop_size: int,
    border: int = cv2.BORDER_REFLECT101,
) -> np.ndarray:
    """The aligned ``S×S`` crop of ``frame`` (same dtype and channels), bilinear.

    ``matrix`` maps frame → crop (pixel centres at integers). Outside the frame the border is
    reflected (``cv2.BORDER_REFLECT101``) unless ``border`` says otherwise.
    """
    return cv2.warpAffine(frame, np.asarray(matrix, dtype=np.float64), (crop_size, crop_size),
                          flags=cv2.INTER_LINEAR, borderMode=border)
