"""The pipeline's two geometry paths (``BlendOptions.geometry``): OpenCV on the host and torch on
the restorer's device (issue 6: batched crops, paste and compositing on the device, only the
finished frame back). On this CPU the torch path runs on the CPU device; the ``gpu`` test
repeats the comparison with the geometry on CUDA.

Real MobileNet detector, identity restorer (a random-weight GPEN for ``--color-match``), a real
clip, lossless output (PNG in .mov).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from gpen_video import pipeline
from gpen_video.backends.identity import IdentityRestorer
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.compose import choose_geometry
from gpen_video.options import BlendOptions
from tests.pipeline_helpers import mask_union, read_frames, run_options

FRAMES = (0, 7)  # 8 frames of a one-face clip


def _run(testdata: Path, out: Path, geometry: str, temporal: str, restorer=None,
         color_match: bool = False) -> tuple[list[np.ndarray], dict]:
    clip = testdata / "videos" / "liveportrait_d11.mp4"
    options = run_options(testdata, clip, out, backend="identity", codec="png", frames=FRAMES,
                          temporal=temporal)
    options = dataclasses.replace(options, blend=BlendOptions(geometry=geometry,
                                                              color_match=color_match))
    seen: dict = {}
    summary = pipeline.run(options, restorer=restorer,
                           observer=lambda index, faces: seen.__setitem__(index, faces))
    assert summary.frames == 8 and summary.faces == 8
    return [f.image for f in read_frames(out)], seen


def _source(testdata: Path) -> list[np.ndarray]:
    frames = read_frames(testdata / "videos" / "liveportrait_d11.mp4")
    return [f.image for f in frames[FRAMES[0]:FRAMES[1] + 1]]


def _assert_same_paste(source, cpu, device, seen) -> None:
    changed = 0
    for index, (src, a, b) in enumerate(zip(source, cpu, device, strict=True)):
        outside = mask_union(seen[index], src.shape) == 0
        assert outside.sum() > 0 and (~outside).sum() > 1000
        assert np.array_equal(b[outside], src[outside])  # bit-identical outside every mask
        assert np.array_equal(a[outside], src[outside])
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        assert diff.mean() <= 1.0  # ≤ 1/255 mean abs difference (issue 6)
        assert diff[~outside].mean() <= 1.0 and diff.max() <= 2.0
        changed += not np.array_equal(b, src)
    assert changed == len(source)  # the faces really went through the device path


@pytest.mark.parametrize("temporal", ["off", "residual"])
def test_torch_geometry_on_the_cpu_matches_the_opencv_path(testdata, tmp_path, caplog,
                                                           temporal):
    cpu, seen = _run(testdata, tmp_path / "cpu.mov", "cpu", temporal)
    with caplog.at_level(logging.INFO, logger="gpen_video.pipeline"):
        device, seen_device = _run(testdata, tmp_path / "torch.mov", "torch", temporal)
    assert any("geometry: torch on cpu" in r.getMessage() for r in caplog.records)
    assert {i: [f.track_id for f in v] for i, v in seen.items()} == \
        {i: [f.track_id for f in v] for i, v in seen_device.items()}
    _assert_same_paste(_source(testdata), cpu, device, seen)


def test_geometry_choice():
    assert choose_geometry("auto", "cpu", cuda_available=False)[0] == "cpu"
    assert choose_geometry("auto", "cuda:0", cuda_available=True)[0] == "torch"
    assert choose_geometry("auto", "cuda", cuda_available=False)[0] == "cpu"
    assert choose_geometry("cpu", "cuda:0", cuda_available=True)[0] == "cpu"
    assert choose_geometry("torch", "cpu", cuda_available=False)[0] == "torch"
    with pytest.raises(BackendUnavailable, match="--geometry cpu"):
        choose_geometry("torch", "cuda:0", cuda_available=False)
    with pytest.raises(UsageError, match="auto, cpu, torch"):
        choose_geometry("gpu", "cpu", cuda_available=False)


class _CudaIdentity(IdentityRestorer):
    """The identity restorer, reporting CUDA so that ``geometry="auto"`` runs on the GPU."""

    @property
    def device(self) -> str:
        return "cuda:0"


@pytest.mark.gpu
def test_cuda_geometry_in_the_pipeline_matches_the_opencv_path(testdata, tmp_path, caplog):
    cpu, seen = _run(testdata, tmp_path / "cpu.mov", "cpu", "off")
    with caplog.at_level(logging.INFO, logger="gpen_video.pipeline"):
        device, _ = _run(testdata, tmp_path / "cuda.mov", "auto", "off",
                         restorer=_CudaIdentity(size=512))
    assert any("geometry: torch on cuda" in r.getMessage() for r in caplog.records)
    _assert_same_paste(_source(testdata), cpu, device, seen)


# ------------------------------------------------------------------ --color-match end to end


@pytest.mark.parametrize("geometry", ["cpu", "torch"])
def test_color_match_changes_only_pixels_inside_masks(testdata, tmp_path, geometry):
    """A random-weight GPEN's faces come out in the wrong colours; --color-match pulls the face
    core's mean colour back towards the source's, and touches nothing outside the masks."""
    from tests.pipeline_helpers import save_small_gpen

    model = save_small_gpen(tmp_path / "gpen128.pth")
    clip = testdata / "videos" / "liveportrait_d11.mp4"
    outputs = {}
    for match in (False, True):
        out = tmp_path / f"out-{match}.mov"
        options = run_options(testdata, clip, out, model=model, codec="png", frames=FRAMES)
        options = dataclasses.replace(options, blend=BlendOptions(geometry=geometry,
                                                                  color_match=match))
        seen: dict = {}
        summary = pipeline.run(options, observer=lambda i, faces: seen.__setitem__(i, faces))
        assert summary.frames == 8 and summary.faces == 8
        outputs[match] = ([f.image for f in read_frames(out)], seen)
    (plain, seen), (matched, _) = outputs[False], outputs[True]
    errors = {False: [], True: []}
    for index, src in enumerate(_source(testdata)):
        cover = mask_union(seen[index], src.shape)
        outside, core = cover == 0, cover >= 0.999
        assert np.array_equal(matched[index][outside], src[outside])
        assert not np.array_equal(matched[index][~outside], plain[index][~outside])
        for match, frames in ((False, plain), (True, matched)):
            mean = frames[index][core].reshape(-1, 3).astype(np.float64).mean(axis=0)
            errors[match].append(np.abs(mean - src[core].reshape(-1, 3).mean(axis=0)).sum())
    assert np.mean(errors[True]) < 0.1 * np.mean(errors[False]), errors  # measured 1.7 vs 170
