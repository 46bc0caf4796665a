"""Alignment smoothing seen through a restorer: on a still face, ``--smooth rts`` must at least
halve the output flicker inside the face against ``--smooth none`` (``--temporal off``).

GPEN-BFR-256 with **random weights** (the real architecture, not a restoration) stands in for
the network: its output changes with every sub-pixel shift of the crop, so crop jitter shows.
"""

from __future__ import annotations

from dataclasses import replace

from gpen_video import pipeline
from gpen_video.options import ModelOptions, SmoothOptions
from tests.pipeline_helpers import flicker, mask_union, read_frames, run_options
from tests.test_pipeline import _noisy_still

FRAMES = 40


def _flicker_run(testdata, clip, out, method: str) -> tuple[list, dict]:
    seen: dict[int, list] = {}
    opts = replace(run_options(testdata, clip, out, codec="png", temporal="off"),
                   model=ModelOptions(name="GPEN-BFR-256", random_weights=True),
                   smooth=SmoothOptions(method=method))
    pipeline.run(opts, observer=lambda i, f: seen.__setitem__(i, f))
    return [f.image for f in read_frames(out)], seen


def test_rts_halves_restorer_flicker_on_a_still_face(testdata, tmp_path):
    clip = _noisy_still(testdata, tmp_path / "still.mp4", n=FRAMES)
    rts, seen = _flicker_run(testdata, clip, tmp_path / "rts.mov", "rts")
    none, _ = _flicker_run(testdata, clip, tmp_path / "none.mov", "none")
    # frames after the paste ramp, in the face core of the middle frame
    core = mask_union(seen[FRAMES // 2], rts[0].shape) >= 0.999
    assert core.sum() > 3000
    ratio = flicker(rts[8:], core) / flicker(none[8:], core)
    print("flicker ratio rts/none", ratio)
    assert ratio <= 0.5, ratio
