"""Paste-back geometry and compositing (identity restorer, synthetic frames, a real photo)."""

from __future__ import annotations

import numpy as np
import pytest

from gpen_video.backends.identity import IdentityRestorer
from gpen_video.compose.colour import ColorMatcher
from gpen_video.compose.mask import template_mask
from gpen_video.compose.reference import Blender, Paste, crop_face, to_hwc, to_nchw
from tests.geometry import face_photo, psnr, similarity

import cv2


def _frame_with_face(testdata, face_px: int, dtype=np.uint8) -> np.ndarray:
    photo = face_photo(testdata)
    face = cv2.resize(photo, (face_px * 2, face_px * 2), interpolation=cv2.INTER_AREA)
    frame = np.pad(face, ((90, 110), (140, 160), (0, 0)), mode="reflect")
    if dtype == np.uint16:
        frame = frame.astype(np.uint16) * 257 + np.uint16(100)  # uses the low bits too
    return np.ascontiguousarray(frame)


def _alpha_in_frame(blender: Blender, matrix, frame) -> np.ndarray:
    crop = np.zeros((blender.size, blender.size, 3), np.float32)
    region = blender.region(matrix, frame.shape)
    _, alpha = blender.warp_to_region(Paste(crop, matrix), region)
    full = np.zeros(frame.shape[:2], np.float32)
    full[region.y0:region.y1, region.x0:region.x1] = alpha
    return full


@pytest.mark.parametrize("face_px", [128, 256, 512])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_identity_round_trip_geometry(testdata, face_px, dtype):
    size = 512
    frame = _frame_with_face(testdata, face_px, dtype)
    h, w = frame.shape[:2]
    matrix = similarity((w / 2 + 0.31, h / 2 - 0.27), face_px, size, 7.0)
    restorer = IdentityRestorer(size=size)
    crop = crop_face(frame, matrix, size)
    restored = to_hwc(restorer.restore(to_nchw(crop[None])))[0]
    blender = Blender(size)
    out = blender.paste(frame, [Paste(restored, matrix)])
    alpha = _alpha_in_frame(blender, matrix, frame)
    outside, core = alpha == 0, alpha >= 0.999
    assert outside.sum() > 0 and core.sum() > 1000
    assert np.array_equal(out[outside], frame[outside])  # bit-identical outside the mask
    peak = float(np.iinfo(dtype).max)
    assert psnr(out[core], frame[core], peak) >= 40.0
    assert out.dtype == frame.dtype


def test_mask_is_soft_and_zero_on_the_crop_border():
    for size in (64, 256, 512):
        mask = template_mask(size)
        assert mask.max() == 1.0 and mask.min() == 0.0
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert np.all(border == 0)
        # no hard edge: neighbouring pixels never jump by more than a few % of full scale
        step = max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max())
        assert step < 16.0 / size  # raised cosine over 11 % of the crop
        assert 0.35 < float((mask >= 0.999).mean()) < 0.75  # a face-sized opaque core


def test_region_of_interest_is_local():
    blender = Blender(512)
    frame_shape = (1080, 1920, 3)
    matrix = similarity((300.0, 400.0), 100, 512, 7.0)
    region = blender.region(matrix, frame_shape)
    area = (region.x1 - region.x0) * (region.y1 - region.y0)
    assert area < 2.0 * 100 * 100  # a face's neighbourhood, not the frame
    # a face partly outside the frame: region clipped, paste still works
    matrix = similarity((5.0, 5.0), 100, 512, 0.0)
    frame = np.full(frame_shape, 77, np.uint8)
    out = blender.paste(frame, [Paste(np.ones((512, 512, 3), np.float32), matrix)])
    assert out[0, 0].tolist() == [255, 255, 255] and out[500, 500].tolist() == [77, 77, 77]


def test_overlapping_faces_composite_order_independent_and_without_seams():
    size = 128
    blender = Blender(size)
    frame = np.full((300, 400, 3), 40, np.uint8)
    m1 = similarity((170.0, 150.0), 120, size, 5.0)
    m2 = similarity((230.0, 150.0), 120, size, -8.0)
    grey = np.full((size, size, 3), 200 / 255, np.float32)
    a = blender.paste(frame, [Paste(grey, m1), Paste(grey, m2)])
    b = blender.paste(frame, [Paste(grey, m2), Paste(grey, m1)])
    assert np.array_equal(a, b)
    alpha1, alpha2 = (_alpha_in_frame(blender, m, frame) for m in (m1, m2))
    both_core = (alpha1 >= 0.999) & (alpha2 >= 0.999)
    assert both_core.sum() > 100
    assert np.all(a[both_core] == 200)  # same colour from both faces: no darkening, no doubling
    union = 1 - (1 - alpha1) * (1 - alpha2)
    expected = np.rint(40 + (200 - 40) * union)
    assert np.abs(a[..., 0].astype(float) - expected).max() <= 1.0
    untouched = union == 0
    assert np.array_equal(a[untouched], frame[untouched])


def test_strength_and_ramp():
    size = 64
    frame = np.full((120, 120, 3), 10, np.uint8)
    matrix = similarity((60.0, 60.0), 60, size, 0.0)
    white = np.ones((size, size, 3), np.float32)
    assert np.array_equal(Blender(size, strength=0.0).paste(frame, [Paste(white, matrix)]), frame)
    half = Blender(size, strength=0.5).paste(frame, [Paste(white, matrix)])
    assert half[60, 60, 0] == round(10 + 0.5 * 245)
    # a track's first frame with a 5-frame ramp (faces/stream.py) has alpha 1/6
    faded = Blender(size).paste(frame, [Paste(white, matrix, alpha=1 / 6)])
    assert faded[60, 60, 0] == round(10 + 245 / 6)


def test_paste_in_place_leaves_other_pixels_alone():
    size = 64
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    before = frame.copy()
    matrix = similarity((100.0, 90.0), 50, size, 12.0)
    Blender(size).paste(frame, [Paste(np.zeros((size, size, 3), np.float32), matrix)],
                        inplace=True)
    changed = np.any(frame != before, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and xs.min() > 60 and xs.max() < 140 and ys.max() < 130


def test_color_matcher_moves_statistics_and_smooths():
    size = 64
    rng = np.random.default_rng(1)
    source = np.clip(rng.normal(0.6, 0.1, (size, size, 3)), 0, 1).astype(np.float32)
    restored = np.clip(rng.normal(0.3, 0.2, (size, size, 3)), 0, 1).astype(np.float32)
    matcher = ColorMatcher(template_mask(size))
    out = matcher(restored, source)
    core = template_mask(size) >= 0.999
    assert abs(out[core].mean() - source[core].mean()) < 0.02
    assert abs(out[core].std() - source[core].std()) < 0.03
    # a sudden change of the source moves the correction only part of the way (smoothed)
    out2 = matcher(restored, np.clip(source + 0.2, 0, 1))
    assert source[core].mean() + 0.01 < out2[core].mean() < source[core].mean() + 0.15


def test_a_blender_reusing_its_working_arrays_pastes_what_a_fresh_one_pastes(testdata):
    """The paste keeps per-thread working arrays between calls: a big face, then a small one,
    8-bit then 16-bit, two threads at once, and a pickled copy must give what a new Blender
    gives each time."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    size = 256
    rng = np.random.default_rng(3)
    cases = []
    for face_px, dtype in [(256, np.uint8), (96, np.uint8), (200, np.uint16), (128, np.uint8)]:
        frame = _frame_with_face(testdata, face_px, dtype)
        h, w = frame.shape[:2]
        matrix = similarity((w / 2 + 0.4, h / 2 - 0.2), face_px, size, 5.0)
        crop = rng.random((size, size, 3), dtype=np.float32)
        cases.append((frame, Paste(crop, matrix, alpha=0.8)))
    expected = [Blender(size).paste(frame, [face]) for frame, face in cases]
    shared = Blender(size)
    for (frame, face), want in zip(cases, expected):
        got = shared.paste(frame, [face])
        assert np.array_equal(got, want) and got.dtype == want.dtype
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            results = list(pool.map(lambda case: shared.paste(case[0], [case[1]]), cases))
            assert all(np.array_equal(g, w) for g, w in zip(results, expected))
    clone = pickle.loads(pickle.dumps(shared))  # still a plain value: copies start empty
    assert np.array_equal(clone.paste(cases[0][0], [cases[0][1]]), expected[0])
