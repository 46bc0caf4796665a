"""Alignment: Umeyama least squares, template, parameters, exact inverse, warps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from gpen_video.faces import (
    FFHQ_TEMPLATE_512,
    SimilarityParams,
    apply_affine,
    invert_affine,
    matrix_to_params,
    params_to_matrix,
    similarity_to_template,
    template_points,
    umeyama,
    warp_to_crop,
)
from gpen_video.faces.align import TEMPLATE_IOD_512, template_in_frame


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_template_is_gpen_and_scales_linearly() -> None:
    assert FFHQ_TEMPLATE_512[0].tolist() == [202.0407, 242.8840]
    assert FFHQ_TEMPLATE_512[4].tolist() == [300.8911, 366.3363]
    np.testing.assert_allclose(template_points(256), FFHQ_TEMPLATE_512 / 2)
    assert TEMPLATE_IOD_512 == pytest.approx(107.39, abs=0.01)
    with pytest.raises(ValueError):
        template_points(0)


def test_umeyama_recovers_an_exact_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, size=(5, 2))
    truth = _similarity(1.7, 0.4, 12.5, -30.0)
    found = umeyama(src, apply_affine(truth, src))
    np.testing.assert_allclose(found, truth, atol=1e-9)


def test_umeyama_is_least_squares_and_never_reflects() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = apply_affine(_similarity(0.8, -0.3, 5, 7), src) + rng.normal(0, 2.0, size=(5, 2))
    found = umeyama(src, dst)
    residual = np.sum((apply_affine(found, src) - dst) ** 2)
    # perturbing any parameter of the fit can only increase the squared error
    params = matrix_to_params(found, 512)
    for field, delta in (("cx", 0.05), ("cy", 0.05), ("width", 0.01), ("angle", 1e-3)):
        for sign in (-1, 1):
            moved = params_to_matrix(
                SimilarityParams(**{**params.__dict__, field: getattr(params, field)
                                    + sign * delta}), 512)
            assert np.sum((apply_affine(moved, src) - dst) ** 2) > residual
    # mirrored points: the best similarity is a rotation, never a reflection
    mirrored = dst * np.array([-1.0, 1.0])
    assert np.linalg.det(umeyama(src, mirrored)[:, :2]) > 0


def test_umeyama_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def test_similarity_to_template_maps_landmarks_onto_the_template() -> None:
    frame_to_crop = _similarity(0.31, 0.25, 17.0, -40.0)
    landmarks = apply_affine(invert_affine(frame_to_crop), FFHQ_TEMPLATE_512)
    matrix = similarity_to_template(landmarks, 512)
    np.testing.assert_allclose(matrix, frame_to_crop, atol=1e-9)
    np.testing.assert_allclose(apply_affine(matrix, landmarks), FFHQ_TEMPLATE_512, atol=1e-9)
    # other crop sizes: the same alignment scaled entry by entry
    np.testing.assert_allclose(similarity_to_template(landmarks, 256), matrix / 2, atol=1e-9)
    with pytest.raises(ValueError):
        similarity_to_template(np.zeros((4, 2)), 512)


def test_inverse_is_exact() -> None:
    matrix = _similarity(2.3, -1.1, 100.0, 40.0)
    inverse = invert_affine(matrix)
    points = np.random.default_rng(3).uniform(-1000, 1000, size=(20, 2))
    np.testing.assert_allclose(apply_affine(inverse, apply_affine(matrix, points)), points,
                               atol=1e-9)
    np.testing.assert_allclose(invert_affine(inverse), matrix, atol=1e-12)


@pytest.mark.parametrize("size", [64, 256, 512, 1024])
def test_params_round_trip_and_are_crop_size_independent(size: int) -> None:
    params = SimilarityParams(cx=321.5, cy=-12.25, width=180.0, angle=0.7)
    matrix = params_to_matrix(params, size)
    back = matrix_to_params(matrix, size)
    for name in ("cx", "cy", "width", "angle"):
        assert getattr(back, name) == pytest.approx(getattr(params, name), abs=1e-9)
    # the crop centre lands on the frame point `center`, the crop side spans `width` pixels
    centre = apply_affine(invert_affine(matrix), np.array([[size / 2, size / 2]]))[0]
    np.testing.assert_allclose(centre, [params.cx, params.cy], atol=1e-9)
    assert np.linalg.norm(invert_affine(matrix)[:, 0]) * size == pytest.approx(180.0)
    np.testing.assert_allclose(params_to_matrix(params, 512) * size / 512, matrix, atol=1e-9)


def test_template_in_frame_inverts_the_alignment() -> None:
    landmarks = apply_affine(invert_affine(_similarity(0.5, 0.1, 3, 4)), FFHQ_TEMPLATE_512)
    params = matrix_to_params(similarity_to_template(landmarks, 512), 512)
    np.testing.assert_allclose(template_in_frame(params), landmarks, atol=1e-9)


def test_warp_and_inverse_warp_are_consistent_pixel_centres() -> None:
    """A crop sampled at M⁻¹(u, v) equals the frame there: checked on a linear ramp, where
    bilinear interpolation is exact, and through the inverse warp back onto the frame."""
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.dstack([xx, yy, xx + yy]).astype(np.float32)
    matrix = _similarity(1.3, 0.2, -20.0, 10.0)
    crop = warp_to_crop(frame, matrix, 64)
    uv = np.stack(np.meshgrid(np.arange(64), np.arange(64)), axis=-1).reshape(-1, 2)
    xy = apply_affine(invert_affine(matrix), uv)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
    got = crop.reshape(-1, 3)[inside]
    np.testing.assert_allclose(got[:, 0], xy[inside, 0], atol=2e-3)
    np.testing.assert_allclose(got[:, 1], xy[inside, 1], atol=2e-3)
    # and back: WARP_INVERSE_MAP with the same M samples the crop at M·(x, y)
    back = cv2.warpAffine(crop, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    x, y = np.round(apply_affine(invert_affine(matrix), np.array([[32.0, 32.0]]))[0]).astype(int)
    assert 0 <= x < w and 0 <= y < h
    np.testing.assert_allclose(back[y, x, :2], [x, y], atol=2e-3)
