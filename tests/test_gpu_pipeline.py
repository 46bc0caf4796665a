"""End to end on a GPU: the pipeline's output with the restorer on CUDA (torch fp16, or a gated
TensorRT engine) differs from the CPU run only within the quality gate's tolerance.

Marked ``gpu`` (and ``tensorrt``): skipped on machines without them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.geometry import face_photo, psnr
from tests.pipeline_helpers import (face_scene, read_frames, run_options, save_small_gpen,
                                    write_clip)

pytestmark = pytest.mark.gpu


def _run(testdata, tmp_path, name, **restore):
    from gpen_video import pipeline

    photo = face_photo(testdata)
    image = face_scene(photo, 160, 5.0, (360, 480), (240.4, 180.3))
    src = tmp_path / "face.mov"
    if not src.exists():
        write_clip(src, [image] * 8)
    model = tmp_path / "gpen128.pth"
    if not model.exists():
        save_small_gpen(model)
    options = run_options(testdata, src, tmp_path / f"{name}.mov", model=model, codec="png",
                          temporal="off")
    options = dataclasses.replace(options,
                                  restore=dataclasses.replace(options.restore, **restore))
    summary = pipeline.run(options)
    assert summary.faces == 8
    return [f.image for f in read_frames(tmp_path / f"{name}.mov")]


@pytest.mark.parametrize("backend, precision", [
    ("torch", "fp16"),
    pytest.param("tensorrt", "fp16", marks=pytest.mark.tensorrt),
])
def test_gpu_pipeline_matches_cpu(testdata, tmp_path, backend, precision):
    cpu = _run(testdata, tmp_path, "cpu", backend="torch", device="cpu", precision="fp32")
    gpu = _run(testdata, tmp_path, f"{backend}-{precision}", backend=backend, device="cuda",
               precision=precision, engine_dir=tmp_path / "engines")
    for a, b in zip(cpu, gpu, strict=True):
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        assert diff.mean() <= 1.0  # ≤ 1/255 mean abs difference
        assert psnr(a, b) >= 40.0
