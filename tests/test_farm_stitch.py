"""Render farms without Ray (issue 8, "Done when" 1 and 3): frame-range chunks through the real
command line, stitched frame-exactly, with the source's audio muxed once.

The clip (tests/farm_helpers.py) has faces only away from the chunk borders, so a chunked render
must equal a single-process render bit for bit. Lossless outputs (PNG in .mov, FFV1 RGB in .mkv)
make that checkable; libx264 output differs from run to run on this machine even for the same
input (measured), so H.264 results are compared loosely.
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from gpen_video.cli import main
from gpen_video.errors import InputError, OutputError, UsageError
from gpen_video.farm import stitch
from gpen_video.farm.stitch import probe_segment, source_timeline
from gpen_video.media import copy_video
from gpen_video.options import EncodeOptions, RangeOptions
from tests.farm_helpers import OVERLAP, audio_packets, face_clip, gpen_video, render_args
from tests.geometry import psnr
from tests.pipeline_helpers import read_frames

CHUNKS = ["0-23", "24-47", "48-95"]  # the last one ends past the 72-frame clip (OpenCue style)


@pytest.fixture(scope="module")
def chunked(testdata, tmp_path_factory):
    """A 72-frame clip rendered once in a single process and once in 3 chunks (--segment)."""
    root = tmp_path_factory.mktemp("farm_stitch")
    clip = face_clip(root / "clip.mov", testdata)
    args = render_args(testdata)
    single = root / "single.mov"
    assert main([str(clip), str(single), "--codec", "png", *args]) == 0
    segdir = root / "segments"
    segdir.mkdir()
    out = {}
    for frames in CHUNKS:
        stdout = io.StringIO()
        extra = ["--progress", "openjd"] if frames == "24-47" else []
        with contextlib.redirect_stdout(stdout):
            code = main([str(clip), str(segdir / f"seg-{frames}.mkv"), "--frames", frames,
                         "--overlap", str(OVERLAP), "--segment", *args, *extra])
        assert code == 0
        out[frames] = stdout.getvalue()
    return {"clip": clip, "single": single, "segdir": segdir, "stdout": out, "root": root}


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.dts is not None]


# ------------------------------------------------------------------ 1. chunks == single process


def test_chunked_render_stitched_equals_single_process(chunked, tmp_path):
    """Done when 1: 3 chunks with overlap, stitched (one lossless delivery encode), equal the
    single-process render frame for frame, keep every frame and pts, and carry the source's audio
    packets bit for bit."""
    out = tmp_path / "stitched.mov"
    segments = sorted(chunked["segdir"].iterdir(), reverse=True)  # order does not matter
    result = stitch(segments, chunked["clip"], out, encode=EncodeOptions(codec="png"))
    assert (result.frames, result.first, result.last, result.segments) == (72, 0, 71, 3)

    single, stitched = read_frames(chunked["single"]), read_frames(out)
    source_pts = source_timeline(chunked["clip"]).pts
    assert len(single) == len(stitched) == 72
    assert [f.pts for f in stitched] == [f.pts for f in single] == list(source_pts)
    assert [f.duration for f in stitched] == [f.duration for f in single]
    faces = 0
    for a, b in zip(single, stitched):
        assert np.array_equal(a.image, b.image), f"frame {a.index} differs"
        faces += a.index % 24 in range(5, 18)
    assert faces == 39
    # the identity restorer did paste faces: the face frames differ from the source's decode
    source = read_frames(chunked["clip"])
    assert not np.array_equal(source[10].image, single[10].image)
    assert audio_packets(out) == audio_packets(chunked["clip"])


def test_stitch_by_packet_copy_keeps_segment_packets(chunked, tmp_path):
    out = tmp_path / "copied.mkv"
    result = stitch([chunked["segdir"]], chunked["clip"], out)  # a folder stands for its files
    assert not result.reencoded and result.frames == 72
    segments = sorted(chunked["segdir"].glob("*.mkv"), key=lambda p: probe_segment(p).packets[0])
    assert _video_packets(out) == [p for s in segments for p in _video_packets(s)]
    single, copied = read_frames(chunked["single"]), read_frames(out)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(single, copied, strict=True))
    # Matroska keeps milliseconds, and shifts the whole file so that the AAC priming packet does
    # not start before 0 (as a single-process .mkv output does): times agree within 1 ms after
    # that shift, the audio/video offset is the source's, the audio bytes are the source's
    ms = Fraction(1, 1000)
    shift = copied[0].time - single[0].time
    assert all(abs(b.time - a.time - shift) <= ms for a, b in zip(single, copied))
    src_audio, out_audio = audio_packets(chunked["clip"]), audio_packets(out)
    assert [b for b, _ in out_audio] == [b for b, _ in src_audio]
    assert all(abs(o - shift - s) <= ms for (_, o), (_, s) in zip(out_audio, src_audio))


def test_stitch_reencode_to_the_sources_codec(chunked, tmp_path):
    """``--reencode`` follows the source (H.264 CRF 18, as ``gpen-video IN OUT`` would)."""
    out = tmp_path / "delivery.mov"
    stitch([chunked["segdir"]], chunked["clip"], out, encode=EncodeOptions())
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    single, delivered = read_frames(chunked["single"]), read_frames(out)
    assert [f.pts for f in delivered] == [f.pts for f in single]
    assert min(psnr(a.image, b.image) for a, b in zip(single, delivered, strict=True)) > 35
    assert audio_packets(out) == audio_packets(chunked["clip"])


# ------------------------------------------------------------------ 3. end past the clip


def test_last_chunk_past_the_clip_is_clamped(chunked):
    """Done when 3: ``--frames 48-95`` on a 72-frame clip wrote frames 48-71, exit 0."""
    seg = probe_segment(chunked["segdir"] / "seg-48-95.mkv")
    timeline = source_timeline(chunked["clip"])
    assert seg.frames == 24
    shown = sorted(p for p, _, _ in seg.packets)
    assert abs(shown[0] * seg.time_base - timeline.time(48)) <= Fraction(1, 1000)
    assert abs(shown[-1] * seg.time_base - timeline.time(71)) <= Fraction(1, 1000)
    with av.open(str(chunked["segdir"] / "seg-48-95.mkv")) as c:
        assert not c.streams.audio  # segments carry no audio: the stitch muxes it once
        assert c.streams.video[0].codec_context.pix_fmt == "bgr0"


def test_run_reports_openjd_progress(chunked):
    lines = chunked["stdout"]["24-47"].splitlines()
    progress = [ln for ln in lines if ln.startswith("openjd_progress: ")]
    assert progress and progress[-1] == "openjd_progress: 100"
    values = [int(ln.split(": ")[1]) for ln in progress]
    assert values == sorted(values)
    assert not any(ln.startswith("Progress:") for ln in lines)


# ------------------------------------------------------------------ continuity is checked


def test_stitch_refuses_gaps_overlaps_and_foreign_segments(chunked, tmp_path):
    segdir, clip = chunked["segdir"], chunked["clip"]
    first, middle, last = (segdir / f"seg-{c}.mkv" for c in CHUNKS)
    out = tmp_path / "out.mov"
    with pytest.raises(InputError, match="frames 24-47 are missing"):
        stitch([first, last], clip, out, encode=EncodeOptions(codec="png"))
    with pytest.raises(InputError, match="frames 48-71 are missing at the end"):
        stitch([first, middle], clip, out)
    # a span may be asked for explicitly: then two chunks are the whole job
    assert stitch([first, middle], clip, tmp_path / "part.mkv", frames=(0, 47)).frames == 48
    lossless_no_audio = EncodeOptions(codec="ffv1", pix_fmt="bgr0", tracks=False)
    extra = copy_video(clip, tmp_path / "extra.mkv", lossless_no_audio,
                       RangeOptions(start=40, end=50)).output
    with pytest.raises(InputError, match="overlap .*frames 40-47"):
        stitch([first, middle, extra, last], clip, out)
    foreign_src = tmp_path / "foreign.mov"
    _thirty_fps_copy(clip, foreign_src)
    foreign = copy_video(foreign_src, tmp_path / "foreign.mkv", lossless_no_audio,
                         RangeOptions(start=24, end=47)).output
    with pytest.raises(InputError, match="not at a frame time"):
        stitch([first, foreign, last], clip, out)
    with pytest.raises(UsageError, match="cannot hold"):
        stitch([first, middle, last], clip, tmp_path / "ffv1.mov")  # .mov takes no FFV1
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    with pytest.raises(OutputError, match="already exists"):
        stitch([first, middle, last], clip, chunked["single"])


def _thirty_fps_copy(src: Path, dst: Path) -> None:
    """The same pictures at 30 fps (so its frame times are not the source's)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 224, 160, "yuv420p"
        for i, decoded in enumerate(inp.decode(video=0)):
            frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="rgb24"),
                                               format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_stitch_command_line(chunked, tmp_path):
    out = tmp_path / "cli.mkv"
    proc = gpen_video("stitch", chunked["segdir"], "--audio-from", chunked["clip"], out,
                      "--progress", "plain")
    assert proc.returncode == 0, proc.stderr
    assert "Progress: 100%" in proc.stdout.splitlines()
    assert len(read_frames(out)) == 72
    # a gap: exit 2, one line, nothing written
    bad = tmp_path / "bad.mkv"
    proc = gpen_video("stitch", chunked["segdir"] / "seg-0-23.mkv",
                      chunked["segdir"] / "seg-48-95.mkv", "--audio-from", chunked["clip"], bad)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "frames 24-47 are missing" in proc.stderr
    assert not bad.exists()


def test_packet_copy_of_closed_gop_segments_keeps_rotation_timecode_and_audio(tmp_path):
    """``--segments gop``: H.264 segments with B-frames, each its own encode with identical
    settings, packet-copied: decode order stays valid, every pts is the source's, and the
    display matrix, timecode, metadata and audio come through."""
    from tests.media_helpers import AudioSpec, VideoSpec, make_video

    src = make_video(tmp_path / "rot.mov", VideoSpec(
        n=48, width=96, height=64, rotation=90, timecode="01:00:00:00",
        metadata={"title": "shot 12"}, audio=[AudioSpec(seconds=2.5)]))
    no_audio = EncodeOptions(tracks=False)  # H.264 CRF 18, following the source
    segments = [copy_video(src, tmp_path / f"g{a}.mov", no_audio, RangeOptions(start=a, end=b))
                .output for a, b in [(0, 15), (16, 31), (32, 47)]]
    assert probe_segment(segments[0]).packets[0][1] < 0  # B-frames: decoding starts earlier
    out = tmp_path / "joined.mov"
    stitch(segments[::-1], src, out, verify="none")  # copy_video writes no segment manifest
    with av.open(str(out)) as c:
        dts = [p.dts for p in c.demux(c.streams.video[0]) if p.dts is not None]
    assert dts == sorted(set(dts))
    joined, source = read_frames(out), read_frames(src)
    assert [f.pts for f in joined] == [f.pts for f in source]
    parts = [f.image for s in segments for f in read_frames(s)]
    assert all(np.array_equal(a.image, b) for a, b in zip(joined, parts, strict=True))
    from gpen_video.media import VideoSource

    with VideoSource(src) as a, VideoSource(out) as b:
        assert (b.rotation, b.timecode, b.metadata.get("title")) == (90.0, "01:00:00:00",
                                                                     "shot 12")
        assert b.display_matrix == a.display_matrix
    assert audio_packets(out) == audio_packets(src)
