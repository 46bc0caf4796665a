"""GPU-side geometry (torch, any device) against the OpenCV/numpy reference path
(gpen_video.compose.reference).

Run on the CPU here; the ``gpu`` tests repeat the comparison on CUDA.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from gpen_video.compose.reference import Blender, Paste, crop_face, to_hwc
from gpen_video.compose.torch_impl import (GpuGeometry, crop_theta, fold_reflect101, frames_to_tensor,
                                     to_norm, to_pixel)
from tests.geometry import face_photo, psnr, similarity

S = 128


def _frames(testdata, dtype=np.uint8) -> list[np.ndarray]:
    photo = face_photo(testdata)
    frames = [cv2.resize(photo, (480, 360), interpolation=cv2.INTER_AREA),
              cv2.resize(photo[100:900, 50:1000], (480, 360), interpolation=cv2.INTER_AREA),
              cv2.resize(photo[::-1], (480, 360), interpolation=cv2.INTER_AREA)]
    if dtype == np.uint16:
        frames = [f.astype(np.uint16) * 257 + np.uint16(37) for f in frames]
    return [np.ascontiguousarray(f) for f in frames]


# faces: (frame, centre, face size in px, degrees); one crosses the top-left frame border, two
# overlap in frame 0, frame 1 has none, frame 2 has one at a steep angle
FACES = [(0, (240.3, 180.2), 200, 7.0), (0, (330.6, 150.1), 150, -12.0),
         (0, (60.5, 40.7), 150, -20.0), (2, (250.0, 200.0), 90, 33.0)]


def _matrices(size=S):
    return np.stack([similarity(c, px, size, deg) for _, c, px, deg in FACES])


def _index():
    return [f for f, *_ in FACES]


def test_normalisation_matrices_are_inverse_and_centre_based():
    a, b = to_norm(480, 360), to_pixel(480, 360)
    np.testing.assert_allclose(a @ b, np.eye(3), atol=1e-12)
    # pixel centre 0 and W-1 sit half a pixel inside the ±1 edges (align_corners=False)
    np.testing.assert_allclose(a @ [0, 0, 1], [-1 + 1 / 480, -1 + 1 / 360, 1])
    np.testing.assert_allclose(a @ [479, 359, 1], [1 - 1 / 480, 1 - 1 / 360, 1])
    # an integer translation crop is an exact copy of frame pixels
    frame = np.random.default_rng(0).integers(0, 256, (1, 40, 50, 3), dtype=np.uint8)
    m = np.array([[1.0, 0.0, -7.0], [0.0, 1.0, -5.0]])  # crop (u, v) = frame (x − 7, y − 5)
    geo = GpuGeometry(16)
    crop = geo.crops(torch.from_numpy(frame), [0], m[None])[0]
    expected = frame[0, 5:21, 7:23].astype(np.float32) / 255
    np.testing.assert_allclose(crop.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert crop_theta(m, (40, 50), 16).shape == (2, 3)


def test_fold_matches_opencv_reflect101():
    n = 7
    pixels = np.arange(-20, 27)
    expected = [cv2.borderInterpolate(int(p), n, cv2.BORDER_REFLECT_101) for p in pixels]
    norm = torch.tensor((2 * pixels + 1) / n - 1, dtype=torch.float64)
    folded = ((fold_reflect101(norm, n) + 1) * n - 1) / 2
    np.testing.assert_allclose(folded.numpy(), expected, atol=1e-9)
    assert torch.all(fold_reflect101(torch.linspace(-3, 3, 11), 1) == 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_batched_crops_reproduce_crop_face(testdata, dtype):
    frames = _frames(testdata, dtype)
    geo = GpuGeometry(S)
    crops = geo.crops(frames_to_tensor(frames, "cpu"), _index(), _matrices())  # one call
    assert crops.shape == (len(FACES), 3, S, S) and crops.dtype == torch.float32
    for k, (f, *_rest) in enumerate(FACES):
        ref = crop_face(frames[f], _matrices()[k], S)  # OpenCV, BORDER_REFLECT101
        diff = np.abs(crops[k].permute(1, 2, 0).numpy() - ref)
        assert diff.mean() <= 1 / 255, k
        assert diff.max() <= 2 / 255, k  # OpenCV rounds its uint8 output; nothing else differs


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_paste_reproduces_the_blender(testdata, dtype):
    frames = _frames(testdata, dtype)
    mats = _matrices()
    rng = np.random.default_rng(3)
    restored = torch.from_numpy(rng.random((len(FACES), 3, S, S), dtype=np.float32))
    restored = torch.nn.functional.avg_pool2d(restored, 5, 1, 2)  # smooth, like faces
    alphas = [1.0, 0.6, 1.0, 0.35]
    blender = Blender(S, strength=0.9)
    expected = []
    for f, frame in enumerate(frames):
        pastes = [Paste(to_hwc(restored[k:k + 1].numpy())[0], mats[k], alphas[k])
                  for k, (ff, *_r) in enumerate(FACES) if ff == f]
        expected.append(blender.paste(frame, pastes))
    geo = GpuGeometry(S, strength=0.9)
    device_frames = frames_to_tensor(frames, "cpu")
    out = geo.paste(device_frames, restored, _index(), mats, alphas).numpy()
    peak = float(np.iinfo(dtype).max)
    for f, frame in enumerate(frames):
        diff = np.abs(out[f].astype(np.float64) - expected[f].astype(np.float64)) / peak
        assert diff.mean() <= 1 / 255 and diff.max() <= 2 / 255, f
        untouched = np.all(expected[f] == frame, axis=-1)
        assert np.array_equal(out[f][untouched & np.all(out[f] == frame, axis=-1)],
                              frame[untouched & np.all(out[f] == frame, axis=-1)])
        # outside every face's mask: bit-identical to the input frame
        outside = _outside_all_masks(blender, [mats[k] for k, (ff, *_r) in enumerate(FACES)
                                               if ff == f], frame.shape)
        assert np.array_equal(out[f][outside], frame[outside])
    assert np.array_equal(out[1], frames[1])  # no face in frame 1
    assert not np.array_equal(out[0], frames[0])


def _outside_all_masks(blender: Blender, mats, shape) -> np.ndarray:
    outside = np.ones(shape[:2], bool)
    for m in mats:
        region = blender.region(m, shape)
        crop = np.zeros((blender.size, blender.size, 3), np.float32)
        _, alpha = blender.warp_to_region(Paste(crop, m), region)
        sub = outside[region.y0:region.y1, region.x0:region.x1]
        sub &= alpha <= 0
    return outside


def test_identity_round_trip_on_the_device_path(testdata):
    """warp → identity → inverse warp → composite: the face core within 40 dB (DESIGN §8)."""
    frames = _frames(testdata)
    m = similarity((240.3, 180.2), 100, S, 7.0)[None]  # 100 px face into a 128 px crop
    geo = GpuGeometry(S)
    tensor = frames_to_tensor(frames[:1], "cpu")
    crops = geo.crops(tensor, [0], m)
    out = geo.paste(tensor.clone(), crops, [0], m).numpy()[0]
    region = geo.blender.region(m[0], frames[0].shape)
    _, alpha = geo.blender.warp_to_region(Paste(np.zeros((S, S, 3), np.float32), m[0]), region)
    core = np.zeros(frames[0].shape[:2], bool)
    core[region.y0:region.y1, region.x0:region.x1] = alpha >= 0.999
    assert core.sum() > 2000
    assert psnr(out[core], frames[0][core]) >= 40.0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cuda_geometry_matches_the_cpu_paste(testdata, dtype):
    frames = _frames(testdata, dtype)
    mats = _matrices()
    restored = torch.rand(len(FACES), 3, S, S, generator=torch.Generator().manual_seed(0))
    blender = Blender(S)
    gpu = GpuGeometry(S, device="cuda")
    crops = gpu.crops(frames_to_tensor(frames, "cuda"), _index(), mats)
    for k, (f, *_r) in enumerate(FACES):
        ref = crop_face(frames[f], mats[k], S)
        assert np.abs(crops[k].permute(1, 2, 0).cpu().numpy() - ref).mean() <= 1 / 255
    out = gpu.paste(frames_to_tensor(frames, "cuda"), restored.cuda(), _index(), mats).cpu()
    peak = float(np.iinfo(dtype).max)
    for f, frame in enumerate(frames):
        pastes = [Paste(to_hwc(restored[k:k + 1].numpy())[0], mats[k])
                  for k, (ff, *_r) in enumerate(FACES) if ff == f]
        expected = blender.paste(frame, pastes)
        diff = np.abs(out[f].numpy().astype(np.float64) - expected) / peak
        assert diff.mean() <= 1 / 255
