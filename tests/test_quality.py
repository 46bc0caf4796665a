"""``gpen-video measure``: the numbers, on known pairs of videos (real clips, real detector)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gpen_video import pipeline
from gpen_video.cli import main
from gpen_video.options import DetectOptions, ModelOptions
from gpen_video.quality import MeasureOptions, measure
from gpen_video.quality.metrics import FlowEstimator, landmark_jitter, warping_error
from tests.geometry import face_photo
from tests.pipeline_helpers import run_options, write_clip

CLIP = "liveportrait_d18"
FRAMES = 12


def _options(testdata: Path) -> MeasureOptions:
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    return MeasureOptions(detect=DetectOptions(network="mobile0.25", weights=weights,
                                               device="cpu"), max_frames=FRAMES)


def test_identity_run_reads_as_its_source_a_random_gpen_run_does_not(testdata, tmp_path):
    clip = testdata / "videos" / f"{CLIP}.mp4"
    ident, gpen = tmp_path / "identity.mov", tmp_path / "gpen.mov"
    pipeline.run(run_options(testdata, clip, ident, backend="identity", codec="png",
                             frames=(0, FRAMES - 1)))
    # GPEN-BFR-256 with random weights: the real architecture, not a restoration; its
    # noise-like output amplifies every change of the crop (default options, temporal on)
    pipeline.run(replace(run_options(testdata, clip, gpen, codec="png", frames=(0, FRAMES - 1)),
                         model=ModelOptions(name="GPEN-BFR-256", random_weights=True)))
    a = measure(clip, ident, _options(testdata))
    assert a.frames == FRAMES and a.clip.frames >= FRAMES - 1 and len(a.tracks) == 1
    assert 0.95 <= a.clip.warp_ratio <= 1.05, a.text()
    assert a.clip.sharpness_ratio >= 0.97, a.text()
    assert a.change_outside == 0.0 and a.change_inside < 1.0, a.text()
    assert 0.5 <= a.clip.jitter_ratio <= 2.0, a.text()
    # random weights turn the face into a smooth false-colour image (looked at: a PNG of frame
    # 3): far less face-core detail, a large change inside the faces and none outside
    b = measure(clip, gpen, _options(testdata))
    assert b.clip.sharpness_ratio < 0.5, b.text()
    assert b.change_inside > 20.0 and b.change_outside == 0.0, b.text()


def test_measure_command_writes_json_and_plot(testdata, tmp_path, capsys):
    """Fresh per-frame noise inside a still face: the result flickers, the JSON says so."""
    from tests.pipeline_helpers import face_scene

    photo = face_photo(testdata)
    still = face_scene(photo, 150, 2.0, (288, 384), (192.0, 140.0))
    rng = np.random.default_rng(0)
    source = [np.clip(still + rng.normal(0, 1.0, still.shape), 0, 255).astype(np.uint8)
              for _ in range(10)]
    noisy = [np.clip(f + rng.normal(0, 8.0, f.shape), 0, 255).astype(np.uint8) for f in source]
    src = write_clip(tmp_path / "src.mov", source)
    res = write_clip(tmp_path / "res.mov", noisy)
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    png = tmp_path / "curves.png"
    code = main(["measure", str(src), str(res), "--json", "--plot", str(png), "--detector",
                 "mobile0.25", "--detector-weights", str(weights)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] == 10 and len(data["tracks"]) == 1
    assert data["clip"]["warp_ratio"] > 5.0  # σ 8 noise against σ 1
    assert data["change_outside"] > 5.0  # the noise is everywhere
    assert png.stat().st_size > 20_000


def test_measure_refuses_videos_of_different_sizes(testdata, tmp_path, capsys):
    a = write_clip(tmp_path / "a.mov", [np.zeros((64, 64, 3), np.uint8)] * 3)
    b = write_clip(tmp_path / "b.mov", [np.zeros((64, 128, 3), np.uint8)] * 3)
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    assert main(["measure", str(a), str(b), "--detector", "mobile0.25", "--detector-weights",
                 str(weights)]) == 2
    assert "equal frames" in capsys.readouterr().err


def test_warping_error_and_jitter_units(testdata):
    import cv2

    photo = cv2.resize(face_photo(testdata), (128, 128), interpolation=cv2.INTER_AREA)
    prev = photo.astype(np.float32) / 255.0
    m = np.array([[1.0, 0.0, 1.5], [0.0, 1.0, -0.5]])  # content moves by (-1.5, +0.5)
    cur = cv2.warpAffine(prev, m, (128, 128), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT101)
    mask = np.zeros((128, 128), bool)
    mask[24:104, 24:104] = True
    flow = FlowEstimator()(prev, cur)
    assert flow.valid[mask].mean() > 0.9
    moved = warping_error(flow, prev, cur, mask)
    still = float(np.square(cur - prev).mean(axis=2)[mask].mean())
    assert moved < 0.1 * still  # the flow explains the motion
    flicker = np.clip(cur + 0.05, 0, 1)
    assert warping_error(flow, prev, flicker, mask) > 10 * moved
    eyes = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0], [2.0, 9.0], [8.0, 9.0]])
    linear = [eyes + [2.0 * t, 0.0] for t in range(5)]
    assert all(v == pytest.approx(0.0) for v in landmark_jitter(linear)[1:-1])
    shaky = [eyes + [0.5 * (-1) ** t, 0.0] for t in range(5)]
    assert landmark_jitter(shaky)[2] == pytest.approx(2.0 / 10.0)  # |0.5+1+0.5| / IOD 10
    assert landmark_jitter([eyes, None, eyes]) == [None, None, None]


def test_measure_infers_the_detector_from_its_weights_and_takes_a_frame_range(
        testdata, tmp_path, capsys):
    """``measure --detector-weights <MobileNet file>`` without ``--detector`` (it once failed,
    asking the user to leave out the --detector they had left out), and ``--frames A-B`` as a
    run's range; the old ``--frames N`` is refused with the range to use instead."""
    from tests.pipeline_helpers import face_scene

    still = face_scene(face_photo(testdata), 150, 2.0, (288, 384), (192.0, 140.0))
    rng = np.random.default_rng(1)
    frames = [np.clip(still + rng.normal(0, 2.0, still.shape), 0, 255).astype(np.uint8)
              for _ in range(8)]
    src = write_clip(tmp_path / "src.mov", frames)
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    code = main(["measure", str(src), str(src), "--json", "--frames", "2-6",
                 "--detector-weights", str(weights)])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["frames"] == 5 and len(data["tracks"]) == 1  # frames 2..6, the face found
    assert data["change_inside"] == 0.0  # the same video on both sides
    assert main(["measure", str(src), str(src), "--frames", "6",
                 "--detector-weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "--frames 0-5" in err and "range" in err, err
