"""``--compare side-by-side|split``: review outputs with the source beside the result."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest

from gpen_video import pipeline
from gpen_video.errors import UsageError
from gpen_video.review import compose, output_size
from tests.pipeline_helpers import read_frames, run_options

CLIP = "liveportrait_d18"  # 480×480 with an AAC track


def test_compose_layouts():
    src = np.zeros((4, 6, 3), np.uint8)
    res = np.full((4, 6, 3), 200, np.uint8)
    assert output_size("side-by-side", 6, 4) == (12, 4) and output_size("split", 6, 4) == (6, 4)
    both = compose("side-by-side", src, res)
    assert both.shape == (4, 12, 3) and not both[:, :6].any() and (both[:, 6:] == 200).all()
    split = compose("split", src, res)
    assert not split[:, :2].any() and (split[:, 4:] == 200).all() and (split[:, 2:4] == 127).all()
    assert compose("off", src, res) is res
    with pytest.raises(ValueError, match="side-by-side"):
        compose("above", src, res)


@pytest.mark.parametrize("mode", ["side-by-side", "split"])
def test_review_output_keeps_timing_and_audio(testdata, tmp_path, mode):
    clip = testdata / "videos" / f"{CLIP}.mp4"
    out = tmp_path / "review.mov"
    opts = replace(run_options(testdata, clip, out, backend="identity", codec="png",
                               frames=(0, 5)), compare=mode)
    pipeline.run(opts)
    src = read_frames(clip)[:6]
    got = read_frames(out)
    assert [f.pts * f.time_base for f in got] == [f.pts * f.time_base for f in src]
    h, w = src[0].image.shape[:2]
    for a, b in zip(src, got, strict=True):
        if mode == "side-by-side":
            assert b.image.shape == (h, 2 * w, 3)
            assert np.array_equal(b.image[:, :w], a.image)  # the source, untouched
        else:
            assert b.image.shape == (h, w, 3)
            assert np.array_equal(b.image[:, :w // 2 - 1], a.image[:, :w // 2 - 1])
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1


def test_unknown_compare_mode_is_a_usage_error(testdata, tmp_path):
    clip = testdata / "videos" / f"{CLIP}.mp4"
    opts = replace(run_options(testdata, clip, tmp_path / "x.mkv", backend="identity"),
                   compare="over-under")
    with pytest.raises(UsageError, match="--compare"):
        pipeline.run(opts)
