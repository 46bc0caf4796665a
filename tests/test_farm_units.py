"""Render-farm pieces that need no rendering: chunk plans, segment formats, job keys, the
farm-manager progress protocol, and the messages of the farm command."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from gpen_video.cli import main
from gpen_video.errors import UsageError
from gpen_video.farm import plan_chunks, segment_format
from gpen_video.farm.plan import job_key
from gpen_video.progress import OpenJDStream, Progress, translate_line
from gpen_video.media.codecs import SourceVideoInfo
from gpen_video.options import EncodeOptions, RunOptions
from tests.media_helpers import VideoSpec, make_video

H264 = SourceVideoInfo("h264", "High", "yuv420p", 8)
PRORES = SourceVideoInfo("prores", "HQ", "yuv422p10le", 10)


def test_plan_chunks_covers_the_span_once():
    chunks = plan_chunks(1001, 1100, 30)
    assert [(c.start, c.end) for c in chunks] == [(1001, 1030), (1031, 1060), (1061, 1090),
                                                   (1091, 1100)]
    assert sum(c.count for c in chunks) == 100
    assert chunks[0].segment_name(".mkv") == "seg-001001-001030.mkv"
    assert chunks[-1].frames == "1091-1100"
    with pytest.raises(UsageError, match="--chunk 0"):
        plan_chunks(0, 10, 0)


def test_segment_format_follows_the_delivery_codec():
    # long-GOP delivery: lossless RGB FFV1 segments without audio, one encode at the end
    fmt = segment_format(H264, 8, "out.mp4", EncodeOptions())
    assert (fmt.mode, fmt.suffix, fmt.reencode) == ("lossless", ".mkv", True)
    assert (fmt.encode.codec, fmt.encode.pix_fmt, fmt.encode.tracks) == ("ffv1", "bgr0", False)
    assert segment_format(PRORES, 10, "o.mp4", EncodeOptions(codec="h264")).encode.pix_fmt \
        == "gbrp16le"
    # intra delivery: segments in it, packet-copied
    fmt = segment_format(PRORES, 10, "out.mov", EncodeOptions())
    assert (fmt.mode, fmt.suffix, fmt.reencode, fmt.encode.tracks) == ("copy", ".mov", False,
                                                                       False)
    fmt = segment_format(H264, 8, "out.mkv", EncodeOptions(crf=20), "gop")
    assert (fmt.mode, fmt.suffix, fmt.encode.crf, fmt.reencode) == ("gop", ".mov", 20, False)
    ffv1 = SourceVideoInfo("ffv1", None, "yuv420p", 8)
    assert segment_format(ffv1, 8, "out.mkv", EncodeOptions()).suffix == ".mkv"
    with pytest.raises(UsageError, match="intra-only"):
        segment_format(H264, 8, "out.mov", EncodeOptions(), "copy")
    with pytest.raises(UsageError, match="image sequence"):
        segment_format(H264, 8, "out_%06d.png", EncodeOptions())


def test_job_key_names_what_changes_the_segments(tmp_path):
    src = tmp_path / "in.mov"
    src.write_bytes(b"x")
    run = RunOptions(input=src, output=tmp_path / "a.mov")
    fmt = segment_format(H264, 8, "a.mov", EncodeOptions())
    key = job_key(run, 300, fmt)
    assert key == job_key(replace(run, output=tmp_path / "b.mov", progress="json"), 300, fmt)
    assert key != job_key(run, 200, fmt)
    assert key != job_key(replace(run, faces="largest"), 300, fmt)
    src.write_bytes(b"xy")  # another input file
    assert key != job_key(run, 300, fmt)


def test_progress_lines_for_farm_managers():
    out = io.StringIO()
    p = Progress("plain", 200, out, io.StringIO())
    for done in (0, 1, 2, 50, 50, 120, 199, 200):
        p.update(done)
    p.update(10)  # never goes back
    assert out.getvalue().splitlines() == ["Progress: 0%", "Progress: 1%", "Progress: 25%",
                                           "Progress: 60%", "Progress: 99%", "Progress: 100%"]
    out = io.StringIO()
    p = Progress("openjd", 4, out, io.StringIO())
    p.update(1)
    p.event("chunk", "chunk 1/4 rendered")
    p.update(4)
    assert out.getvalue().splitlines() == ["openjd_progress: 25", "openjd_status: chunk 1/4 "
                                           "rendered", "openjd_progress: 100"]
    out = io.StringIO()
    p = Progress("json", 10, out, io.StringIO())
    p.update(10)
    p.event("chunk", "done", chunk=3, status="rendered")
    p.close({"frames": 10})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["progress", "chunk", "summary"]
    assert events[0]["percent"] == 100.0 and events[1]["chunk"] == 3


def test_openjd_stream_rewrites_the_pipelines_progress_lines():
    target = io.StringIO()
    stream = OpenJDStream(target)
    print("Progress: 7%", file=stream)
    stream.write("Progress: 10")
    stream.write("0%\ngpen-video: wrote out.mov\n")
    stream.flush()
    assert target.getvalue() == "openjd_progress: 7\nopenjd_progress: 100\n" \
                                "gpen-video: wrote out.mov\n"
    assert translate_line("Progress: 42% done") == "Progress: 42% done"


@pytest.fixture
def small_clip(tmp_path) -> Path:
    return make_video(tmp_path / "small.mov", VideoSpec(n=6, rate=Fraction(24)))


def test_farm_without_ray_names_the_extra(small_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    code = main(["farm", str(small_clip), str(tmp_path / "out.mov"), "--backend", "identity"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "pip install 'gpen-video[farm]'" in err


def test_farm_and_segment_usage_errors(small_clip, tmp_path, capsys):
    code = main(["farm", str(small_clip), str(tmp_path / "o.mov"), "--segment"])
    assert code == 2 and "--segment is for single chunks" in capsys.readouterr().err
    code = main([str(small_clip), str(tmp_path / "seg.mov"), "--segment", "--frames", "0-2"])
    assert code == 2 and "name the segment .mkv" in capsys.readouterr().err
    code = main([str(small_clip), str(tmp_path / "seg.mkv"), "--segment", "--codec", "h264"])
    assert code == 2 and "drop --codec" in capsys.readouterr().err
    code = main(["stitch", str(tmp_path), "--audio-from", str(small_clip),
                 str(tmp_path / "x.mkv"), "--crf", "20"])
    assert code == 2 and "--reencode" in capsys.readouterr().err
