"""B1 at small size: ``benchmarks/face_stability.py``'s pass criteria, asserted.

A real face photo moved along known trajectories (smooth sinusoids, jerky holds and pans, a
cut); landmarks from the real RetinaFace on every rendered frame, and in a synthetic-noise mode.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("face_stability",
                                                  REPO / "benchmarks" / "face_stability.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("face_stability", module)
    spec.loader.exec_module(module)
    return module


b1 = _load_benchmark()


def _assert_criteria(results: dict) -> None:
    checks = results["checks"]
    scenarios = results["scenarios"]
    # default RMSE ≤ 0.5× raw on smooth, ≤ 1.0× raw on jerky
    assert checks["smooth_rmse_ratio"] <= 0.5, scenarios["smooth"]["methods"]
    assert checks["jerky_rmse_ratio"] <= 1.0, scenarios["jerky"]["methods"]
    # max error ≤ 5 % of the inter-ocular distance, in every scenario
    assert checks["default_max_px"] <= 0.05 * b1.TEMPLATE_IOD_512
    # nothing carried across the cut: the second shot alone gives the very same output
    isolation = scenarios["cut"]["cut_isolation"]
    assert isolation["max_matrix_difference"] == 0.0
    assert isolation["frames_differing_in_presence"] == 0
    assert not isolation["shared_track_ids"]
    after_cut = scenarios["cut"]["methods"]["default"]["max_px_first5_after_cut"]
    assert after_cut <= 0.05 * b1.TEMPLATE_IOD_512
    # the smoothed output shakes less than the raw one
    for entry in scenarios.values():
        methods = entry["methods"]
        assert methods["default"]["jitter_px"] < methods["raw"]["jitter_px"]


def test_b1_synthetic_noise(testdata: Path) -> None:
    """Landmarks = truth + Gaussian noise (1.5 % of IOD): the smoother's own effect."""
    results = b1.evaluate(size=(320, 180), frames=100, iod_fraction=0.1, mode="synthetic",
                          sigma=0.015, testdata=testdata)
    _assert_criteria(results)
    assert results["checks"]["all_pass"]


def test_b1_real_detector(testdata: Path) -> None:
    """Landmarks from RetinaFace MobileNet-0.25 on each rendered 320×180 frame."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = b1.evaluate(size=(320, 180), frames=80, iod_fraction=0.1, mode="detector",
                              testdata=testdata)
    finally:
        torch.set_num_threads(before)
    _assert_criteria(results)
    for entry in results["scenarios"].values():
        assert entry["detected_frames"] == entry["frames"]
        methods = entry["methods"]
        # refinement and smoothing each help: per-frame refined < raw, default < refined
        assert methods["refined"]["rmse_px"] < methods["raw"]["rmse_px"]
        assert methods["default"]["rmse_px"] <= methods["refined"]["rmse_px"] * 1.05
        _assert_tracked(entry)


def _assert_tracked(entry: dict) -> None:
    """Tracked detection (the product's default) is as stable as full-frame detection, and
    within the same 5 %-of-IOD bound on every frame."""
    methods = entry["methods"]
    assert methods["tracked"]["frames"] == entry["frames"]
    assert methods["tracked"]["rmse_px"] <= b1.TRACKED_LIMIT * methods["default"]["rmse_px"]
    assert methods["tracked"]["max_px"] <= 0.05 * b1.TEMPLATE_IOD_512


@pytest.mark.slow
def test_b1_full_size(testdata: Path) -> None:
    """The benchmark's own size (640×360, 150 frames per scenario)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = b1.evaluate(size=(640, 360), frames=150, mode="detector", testdata=testdata)
    finally:
        torch.set_num_threads(before)
    _assert_criteria(results)
    for entry in results["scenarios"].values():
        # at this size a fast pan once moved a face so far from its prediction that the
        # refine windows read reflected pixels past the uploaded region (7.3 px on jerky)
        _assert_tracked(entry)
