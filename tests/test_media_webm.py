"""VP9 and AV1 kept (WebM, Matroska), ``.webm`` output with Opus (issue 34).

Clips are made here with PyAV (libvpx-vp9 + libopus, SVT-AV1), small and short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpen_video.errors import UsageError
from gpen_video.media import SourceVideoInfo, choose_encoder, copy_video
from gpen_video.options import EncodeOptions
from tests.media_helpers import (AudioSpec, VideoSpec, frame_times, make_video, stream_info,
                                 stream_packets)

_FAST_VP9 = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"}


def _codecs(path: Path) -> list[tuple[str, str | None]]:
    return [(s["type"], s.get("codec")) for s in stream_info(path) if s["type"] != "container"]


@pytest.fixture
def vp9_opus(tmp_path) -> Path:
    return make_video(tmp_path / "in.webm", VideoSpec(
        n=20, codec="libvpx-vp9", options=dict(_FAST_VP9),
        audio=[AudioSpec(codec="libopus", rate=48000, seconds=0.8, language="eng")]), "webm")


def test_vp9_opus_webm_in_and_out_keeps_codec_audio_and_timing(vp9_opus, tmp_path):
    out = tmp_path / "out.webm"
    result = copy_video(vp9_opus, out)
    assert result.frames_written == 20 and result.notes == ()
    assert _codecs(out) == [("video", "vp9"), ("audio", "opus")]
    assert frame_times(out) == frame_times(vp9_opus)
    (before,), (after,) = stream_packets(vp9_opus, "audio"), stream_packets(out, "audio")
    assert len(after) == len(before) > 10
    assert [p[0] for p in after] == [p[0] for p in before]  # Opus copied bit for bit
    assert [p[1] for p in after] == [p[1] for p in before]


def test_vp9_into_mkv_stays_vp9(vp9_opus, tmp_path):
    result = copy_video(vp9_opus, tmp_path / "out.mkv")
    assert result.notes == () and _codecs(tmp_path / "out.mkv") == [("video", "vp9"),
                                                                       ("audio", "opus")]


def test_aac_h264_into_webm_becomes_vp9_and_opus_with_notes(tmp_path):
    src = make_video(tmp_path / "in.mp4", VideoSpec(n=12, audio=[AudioSpec(seconds=0.5,
                                                                           rate=44100)]))
    result = copy_video(src, tmp_path / "out.webm")
    assert _codecs(tmp_path / "out.webm") == [("video", "vp9"), ("audio", "opus")]
    assert any("writing VP9" in n for n in result.notes)
    assert any("transcoding it to libopus" in n for n in result.notes)
    assert len(frame_times(tmp_path / "out.webm")) == 12


def test_av1_kept_in_mkv(tmp_path):
    src = make_video(tmp_path / "in.mkv", VideoSpec(n=10, codec="libsvtav1",
                                                    options={"preset": "12", "crf": "40"}))
    result = copy_video(src, tmp_path / "out.mkv")
    assert result.notes == ()
    (video,) = [c for t, c in _codecs(tmp_path / "out.mkv") if t == "video"]
    assert video in ("libdav1d", "av1")
    assert len(frame_times(tmp_path / "out.mkv")) == 10


def test_web_codec_choices_are_pure_rules():
    vp9 = SourceVideoInfo(codec="vp9", profile=None, pix_fmt="yuv420p", bit_depth=8)
    spec = choose_encoder(vp9, "out.webm")
    assert (spec.encoder, spec.container, spec.pix_fmt) == ("libvpx-vp9", "webm", "yuv420p")
    assert spec.options["crf"] == "24" and spec.options["b"] == "0"
    assert choose_encoder(vp9, "out.mp4").family == "h264"  # noted fallback
    assert choose_encoder(vp9, "out.webm", EncodeOptions(crf=33)).options["crf"] == "33"
    av1 = choose_encoder(vp9, "out.webm", EncodeOptions(codec="av1"))
    assert av1.encoder == "libsvtav1"
    with pytest.raises(UsageError, match=r"\.webm cannot hold prores"):
        choose_encoder(vp9, "out.webm", EncodeOptions(codec="prores"))


def test_webm_through_the_pipeline(testdata, vp9_opus, tmp_path):
    from gpen_video import pipeline
    from tests.pipeline_helpers import run_options

    out = tmp_path / "out.webm"
    summary = pipeline.run(run_options(testdata, vp9_opus, out, backend="identity"))
    assert summary.frames == 20 and summary.video == "VP9 (vp9) → vp9"
    assert "audio opus copied" in summary.audio
    assert _codecs(out) == [("video", "vp9"), ("audio", "opus")]
    assert frame_times(out) == frame_times(vp9_opus)
    assert [p[0] for p in stream_packets(out, "audio")[0]] == \
        [p[0] for p in stream_packets(vp9_opus, "audio")[0]]
