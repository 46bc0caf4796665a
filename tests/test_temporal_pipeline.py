"""The temporal stage end to end: real detector, tracking, alignment, paste.

The identity restorer checks that unchanged faces pass through; the texture and noise restorers
of ``tests/temporal_instruments.py`` are test instruments (not restorations) with a known,
consistent or per-frame, change to the face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpen_video import pipeline
from gpen_video.compose.mask import template_mask
from gpen_video.compose.reference import crop_face
from gpen_video.quality.metrics import FlowEstimator, sharpness, warping_error
from tests.geometry import psnr
from tests.pipeline_helpers import mask_union, read_frames, run_options
from tests.temporal_instruments import NoiseRestorer, TextureRestorer, face_clip

SIZE = 128


def _run(testdata: Path, clip: Path, out: Path, temporal: str, restorer=None, backend="identity",
         frames=None) -> dict:
    seen: dict[int, list] = {}
    opts = run_options(testdata, clip, out, backend=backend, codec="png", temporal=temporal,
                       frames=frames)
    pipeline.run(opts, restorer=restorer, observer=lambda i, f: seen.__setitem__(i, f))
    return seen


def _crops(images: list[np.ndarray], seen: dict, size: int = SIZE) -> list[np.ndarray | None]:
    """Each frame's (first) face cropped with the run's own matrix (``None``: no face)."""
    out = []
    for i, img in enumerate(images):
        faces = seen.get(i) or []
        out.append(crop_face(img, faces[0].matrix, size) if faces else None)
    return out


def _warp_ratio(src: list, a: list, b: list) -> float:
    """Σ warping error of ``a`` / Σ of ``b`` (flow on the source crops, occlusion-checked)."""
    mask = template_mask(SIZE) >= 0.5
    flow_of = FlowEstimator()
    ea = eb = 0.0
    for t in range(1, len(src)):
        if src[t] is None or src[t - 1] is None:
            continue
        flow = flow_of(src[t - 1], src[t])
        ea += warping_error(flow, a[t - 1], a[t], mask) or 0.0
        eb += warping_error(flow, b[t - 1], b[t], mask) or 0.0
    return ea / eb


@pytest.mark.parametrize("name", ["liveportrait_d0", "liveportrait_d18", "liveportrait_s18"])
def test_identity_restorer_keeps_real_clips_sharp(testdata, tmp_path, name):
    """Default options (temporal on): face-core sharpness ≥ 0.97 of the source and ≥ 45 dB
    against ``--temporal off`` in the face core."""
    clip = testdata / "videos" / f"{name}.mp4"
    seen = _run(testdata, clip, tmp_path / "on.mov", "residual", frames=(0, 9))
    _run(testdata, clip, tmp_path / "off.mov", "off", frames=(0, 9))
    src = [f.image for f in read_frames(clip)[:10]]
    on = [f.image for f in read_frames(tmp_path / "on.mov")]
    off = [f.image for f in read_frames(tmp_path / "off.mov")]
    core = template_mask(256) >= 0.999
    ratios = []
    for i in range(10):
        assert seen[i], f"no face in frame {i}"
        face = seen[i][0]
        ratios.append(sharpness(_crop256(on[i], face), core)
                      / sharpness(_crop256(src[i], face), core))
        cover = mask_union(seen[i], src[i].shape) >= 0.999
        assert psnr(on[i][cover], off[i][cover]) >= 45.0
    assert float(np.median(ratios)) >= 0.97, ratios


def _crop256(image: np.ndarray, face) -> np.ndarray:
    scale = 256.0 / face.crop_size
    return crop_face(image, np.asarray(face.matrix) * scale, 256)


def test_fixed_texture_survives_on_a_moving_face(testdata, tmp_path):
    clip = face_clip(testdata, tmp_path / "moving.mov", moving=True)
    restorer = TextureRestorer(SIZE)
    seen = _run(testdata, clip, tmp_path / "on.mov", "residual", restorer)
    _run(testdata, clip, tmp_path / "off.mov", "off", TextureRestorer(SIZE))
    src = [f.image.astype(np.float32) for f in read_frames(clip)]
    on = [f.image.astype(np.float32) for f in read_frames(tmp_path / "on.mov")]
    off = [f.image.astype(np.float32) for f in read_frames(tmp_path / "off.mov")]
    kept = []
    for i in range(len(src)):
        core = mask_union(seen[i], src[i].shape) >= 0.999
        added = (off[i] - src[i])[core]
        kept.append(float(((on[i] - src[i])[core] * added).sum() / np.square(added).sum()))
    assert min(kept) >= 0.9, kept


@pytest.mark.parametrize("moving", [False, True], ids=["still", "moving"])
def test_fresh_noise_flicker_is_damped(testdata, tmp_path, moving):
    clip = face_clip(testdata, tmp_path / "clip.mov", moving=moving)
    seen = _run(testdata, clip, tmp_path / "on.mov", "residual", NoiseRestorer(SIZE))
    _run(testdata, clip, tmp_path / "off.mov", "off", NoiseRestorer(SIZE))
    src = _crops([f.image for f in read_frames(clip)], seen)
    on = _crops([f.image for f in read_frames(tmp_path / "on.mov")], seen)
    off = _crops([f.image for f in read_frames(tmp_path / "off.mov")], seen)
    assert _warp_ratio(src, on, off) <= 0.5
