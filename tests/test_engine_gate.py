"""The FP16 quality gate, backend-agnostic, on real face crops: an FP32 candidate passes, an
emulated FP16 one passes, an emulated FP8 one (a real, heavy degradation) is rejected."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gpen_video.backends.torch_backend import TorchRestorer
from gpen_video.engine.gate import (GATE_IMAGES, GATE_PSNR_DB, GateRejected, GateReport, compare,
                                    load_gate_faces, require_pass, run_gate)
from gpen_video.options import RestoreOptions
from tests.engine_helpers import emulated_precision, engine_folder, small_gpen

CPU = RestoreOptions(device="cpu")


@pytest.fixture(scope="module")
def faces(testdata):
    return load_gate_faces(64)


@pytest.fixture(scope="module")
def reference():
    with TorchRestorer(small_gpen(), CPU, size=64) as r:
        yield r


def test_gate_set_is_real_faces(testdata):
    assert GATE_PSNR_DB == 40.0
    batch = load_gate_faces(128)
    assert batch.shape == (len(GATE_IMAGES), 3, 128, 128) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    # different photos, with real content (not blank): per-image spread and pairwise differences
    assert all(img.std() > 0.05 for img in batch)
    assert min(np.abs(a - b).mean() for i, a in enumerate(batch) for b in batch[i + 1:]) > 0.02


def test_missing_images_say_where_to_point_the_gate(tmp_path):
    with pytest.raises(Exception, match="--gate-images"):
        load_gate_faces(64, tmp_path)


def test_fp32_onnxruntime_candidate_passes(faces, reference):
    pytest.importorskip("onnxruntime")
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer
    from gpen_video.options import RestoreOptions

    with OnnxRuntimeRestorer(small_gpen(), RestoreOptions(device="cpu", engine_dir=engine_folder()),
                             threads=1) as candidate:
        report = run_gate(candidate, reference, faces)
    assert report.passed and report.psnr_db > 80.0  # fp32 vs fp32: rounding-order noise only
    assert report.max_abs_error < 1e-3
    require_pass(report, "fp32")  # no exception


@pytest.fixture(scope="module")
def emulated(faces, reference):
    """Gate reports of the emulated FP16 and FP8 copies of the reference network."""
    fp16 = TorchRestorer(emulated_precision(small_gpen(), torch.float16), CPU, size=64)
    fp8 = TorchRestorer(emulated_precision(small_gpen(), torch.float8_e4m3fn), CPU, size=64)
    ref_out = reference.restore(faces)  # (run_gate itself is exercised with onnxruntime)
    fp16_out = fp16.restore(faces)
    good = compare(fp16_out, ref_out, candidate=fp16.describe())
    bad = compare(fp8.restore(faces), ref_out, candidate=fp8.describe())
    return good, bad, fp16_out, ref_out


def test_emulated_fp16_passes_and_fp8_is_rejected(emulated, tmp_path):
    good, bad, _, _ = emulated
    assert good.passed and GATE_PSNR_DB < good.psnr_db < 90.0  # close, but not identical
    assert not bad.passed and bad.psnr_db < GATE_PSNR_DB
    assert bad.max_abs_error > good.max_abs_error
    assert len(bad.psnr_per_image_db) == len(GATE_IMAGES)
    assert bad.psnr_db == min(bad.psnr_per_image_db)  # the worst face decides
    with pytest.raises(GateRejected, match=r"--precision bf16 or --precision fp32") as info:
        require_pass(bad, "fp16")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    with pytest.raises(GateRejected, match=r"use --precision fp32$"):
        require_pass(bad, "bf16")
    # recorded as JSON next to the engine, and read back
    path = bad.write(tmp_path / "engine.rejected.json")
    record = json.loads(path.read_text())
    assert record["passed"] is False and record["threshold_db"] == 40.0
    assert record["max_abs_error_8bit"] == pytest.approx(bad.max_abs_error * 255)
    again = GateReport.read(path)
    assert again.psnr_db == pytest.approx(bad.psnr_db) and again.images == list(GATE_IMAGES)


def test_threshold_is_applied_as_stated(emulated):
    good, _, fp16_out, ref_out = emulated
    at = compare(fp16_out, ref_out, threshold_db=good.psnr_db)
    above = compare(fp16_out, ref_out, threshold_db=good.psnr_db + 0.5)
    assert at.passed and not above.passed
    assert at.psnr_db == pytest.approx(good.psnr_db)


def test_identical_and_non_finite_outputs():
    ref = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    same = compare(ref.copy(), ref, images=("a", "b"))
    assert same.passed and math.isinf(same.psnr_db)
    assert json.loads(same.to_json())["psnr_db"] == "inf"
    broken = ref.copy()
    broken[1, 0, 0, 0] = np.nan  # an FP16 overflow shows up as NaN
    verdict = compare(broken, ref, images=("a", "b"))
    assert not verdict.passed and verdict.psnr_db == -math.inf
    assert json.loads(verdict.to_json())["psnr_db"] == "-inf"


def test_the_gate_set_ships_with_the_package(monkeypatch):
    """Without a folder or GPEN_VIDEO_GATE_IMAGES the gate reads the crops in the package (no
    test data checkout needed); they stay small."""
    from gpen_video.bench.synth import default_face_image
    from gpen_video.engine.gate import PACKAGE_IMAGES

    monkeypatch.delenv("GPEN_VIDEO_GATE_IMAGES", raising=False)
    batch = load_gate_faces(64)
    assert batch.shape == (len(GATE_IMAGES), 3, 64, 64) and 0.0 <= batch.min() < batch.max() <= 1.0
    files = sorted(PACKAGE_IMAGES.glob("*.jpg"))
    assert [f.stem for f in files] == sorted(GATE_IMAGES)
    assert sum(f.stat().st_size for f in files) < 500_000
    assert default_face_image() is not None and default_face_image().parent == PACKAGE_IMAGES
