"""Identity round trips through VideoSource → VideoSink (issue 3, "Done when" 1–5).

Every clip is synthesised here with PyAV, plus the real clips in ``testdata/videos``.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from gpen_video.media import VideoSink, VideoSource, copy_video
from gpen_video.options import EncodeOptions, RangeOptions
from tests.media_helpers import (
    AudioSpec,
    VideoSpec,
    decoded_planes,
    frame_mae_255,
    frame_times,
    make_video,
    stream_info,
    stream_packets,
    video_end,
)


def assert_identity(src: Path, dst: Path) -> None:
    """Same frame count and pts; every audio/subtitle packet bit-identical with the same pts."""
    src_times, dst_times = frame_times(src), frame_times(dst)
    assert len(dst_times) == len(src_times)
    assert dst_times == src_times
    # the last frame keeps its duration: the video track ends where the source's does
    assert video_end(dst) == video_end(src)
    for kind in ("audio", "subtitle"):
        src_tracks, dst_tracks = stream_packets(src, kind), stream_packets(dst, kind)
        assert len(dst_tracks) == len(src_tracks), kind
        for a, b in zip(src_tracks, dst_tracks):
            assert len(b) == len(a)
            assert [p[1] for p in b] == [p[1] for p in a]  # pts
            assert all(x[0] == y[0] for x, y in zip(a, b))  # bytes


def test_identity_h264_aac_mp4(tmp_path):
    src = make_video(tmp_path / "in.mp4", VideoSpec(
        n=30, options={"bf": "2"}, audio=[AudioSpec(seconds=1.25, language="eng")],
        metadata={"title": "round trip", "comment": "kept"}, sar=Fraction(4, 3),
        colour={"color_range": 1, "color_primaries": 1, "color_trc": 1, "colorspace": 1}))
    result = copy_video(src, tmp_path / "out.mp4")
    assert result.frames_written == 30 and result.notes == ()
    assert_identity(src, tmp_path / "out.mp4")
    info = stream_info(tmp_path / "out.mp4")
    video, audio, container = info[0], info[1], info[-1]
    assert video["codec"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["color_range"], video["color_primaries"], video["color_trc"],
            video["colorspace"]) == (1, 1, 1, 1)
    assert video["sar"] == Fraction(4, 3)
    assert audio["language"] == "eng"
    assert container["metadata"]["title"] == "round trip"
    assert container["metadata"]["comment"] == "kept"


def test_identity_vfr_h264(tmp_path):
    # irregular frame intervals: 20, 40, 33, 60 ms ... in a 1/90000 time base
    steps = [1800, 3600, 3000, 5400, 2700, 4500]
    pts = list(np.cumsum([0] + [steps[i % len(steps)] for i in range(35)]))
    spec = VideoSpec(pts=[int(p) for p in pts], rate=Fraction(30), time_base=Fraction(1, 90000),
                     options={"bf": "2"})
    src = make_video(tmp_path / "vfr.mp4", spec)
    with VideoSource(src) as source:
        frames = [(f.pts, f.duration) for f in source]
    assert [p for p, _ in frames] == [int(p) for p in pts]
    assert [d for _, d in frames][:-1] == list(np.diff(pts))
    copy_video(src, tmp_path / "out.mp4")
    assert_identity(src, tmp_path / "out.mp4")


def test_identity_two_audio_tracks(tmp_path):
    src = make_video(tmp_path / "two.mp4", VideoSpec(n=24, audio=[
        AudioSpec(language="eng", frequency=440, default=True),
        AudioSpec(language="fra", frequency=660, rate=44100, default=False)]))
    copy_video(src, tmp_path / "out.mp4")
    assert_identity(src, tmp_path / "out.mp4")
    audio = [s for s in stream_info(tmp_path / "out.mp4") if s["type"] == "audio"]
    assert [a["language"] for a in audio] == ["eng", "fra"]
    src_audio = [s for s in stream_info(src) if s["type"] == "audio"]
    assert [a["disposition"] for a in audio] == [a["disposition"] for a in src_audio]


def test_identity_audio_starts_half_a_second_late(tmp_path):
    src = make_video(tmp_path / "late.mp4", VideoSpec(n=36, audio=[AudioSpec(start=0.5)]))
    first_audio = stream_packets(src, "audio")[0][0][1]
    assert first_audio is not None and first_audio > Fraction(4, 10)  # the fixture is late
    copy_video(src, tmp_path / "out.mp4")
    assert_identity(src, tmp_path / "out.mp4")


def test_identity_subtitles_and_mov_copy(tmp_path):
    src = make_video(tmp_path / "subs.mp4", VideoSpec(
        n=24, audio=[AudioSpec(seconds=1.0)], subtitles=[(0.1, 0.5, "hello"), (0.6, 0.9, "bye")]))
    copy_video(src, tmp_path / "out.mp4")
    assert_identity(src, tmp_path / "out.mp4")


def test_audio_transcoded_only_when_the_container_cannot_hold_it(tmp_path, caplog):
    src = make_video(tmp_path / "mulaw.mov", VideoSpec(
        n=24, audio=[AudioSpec(codec="pcm_mulaw", rate=8000, layout="mono", seconds=1.0)]))
    with caplog.at_level(logging.WARNING, logger="gpen_video.media"):
        result = copy_video(src, tmp_path / "out.mp4")
    assert any("transcoding it to aac" in n for n in result.notes)
    audio = [s for s in stream_info(tmp_path / "out.mp4") if s["type"] == "audio"]
    assert audio[0]["codec"] == "aac"
    assert frame_times(tmp_path / "out.mp4") == frame_times(src)
    # the same source into .mov copies the packets without a word
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gpen_video.media"):
        result = copy_video(src, tmp_path / "out.mov")
    assert result.notes == () and not caplog.records
    assert_identity(src, tmp_path / "out.mov")


@pytest.mark.parametrize("codec", ["pcm_s16le", "pcm_s24le"])
def test_unlabelled_pcm_channels_from_matroska_copied_into_mp4(tmp_path, codec):
    """Matroska stores no channel layout for PCM; MP4 cannot write unlabelled channels (its
    trailer failed with "Invalid argument" at the end of a whole run). The output names them
    with FFmpeg's default layout; the samples are the same bytes."""
    src = make_video(tmp_path / "pcm.mkv", VideoSpec(
        n=24, audio=[AudioSpec(codec=codec, layout="stereo", seconds=1.0)]))
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.layout.name == "2 channels"  # unlabelled
    copy_video(src, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name == codec and audio.codec_context.layout.name == "stereo"
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        decoded = [np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
                   for c in (a, b)]
    assert decoded[0].shape == decoded[1].shape and np.array_equal(decoded[0], decoded[1])
    assert frame_times(tmp_path / "out.mp4") == frame_times(src)


# ---------------------------------------------------------------------------- real clips

REAL_CLIPS = ["keep_synthetic_1.mp4", "liveportrait_d0.mp4", "liveportrait_d11.mp4",
              "liveportrait_d13.mp4", "liveportrait_d18.mp4", "liveportrait_s18.mp4"]


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_identity_real_clip(testdata, tmp_path, name):
    # ultrafast: what is checked (frames, timing, audio packets) does not depend on the preset,
    # and it keeps the two 720p clips to a few seconds each on 2 shared cores
    src = testdata / "videos" / name
    result = copy_video(src, tmp_path / name, EncodeOptions(preset="ultrafast"))
    assert result.concealed_frames == ()
    assert_identity(src, tmp_path / name)
    src_info, out_info = stream_info(src), stream_info(tmp_path / name)
    for key in ("pix_fmt", "width", "height", "color_range", "color_primaries", "color_trc",
                "colorspace"):
        assert out_info[0][key] == src_info[0][key], key
    assert out_info[-1]["metadata"].get("creation_time") == \
        src_info[-1]["metadata"].get("creation_time")


# ---------------------------------------------------------------------------- ProRes


PRORES_TAGS = {"color_range": 1, "color_primaries": 1, "color_trc": 1, "colorspace": 1}


def test_prores_422_10bit_timecode_roundtrip(tmp_path):
    spec = VideoSpec(n=12, width=128, height=96, codec="prores_ks", pix_fmt="yuv422p10le",
                     options={"profile": "hq"}, rate=Fraction(25), timecode="01:00:00:00",
                     deep=True, content="smooth", colour=PRORES_TAGS,
                     audio=[AudioSpec(codec="pcm_s24le", seconds=0.5)])
    src = make_video(tmp_path / "in.mov", spec)
    with VideoSource(src) as source:
        assert source.bit_depth == 10 and source.image_dtype == np.uint16
        assert source.timecode == "01:00:00:00"
        first = next(iter(source))
        assert first.image.dtype == np.uint16 and first.image.max() > 4096
    copy_video(src, tmp_path / "out.mov")
    out = tmp_path / "out.mov"
    info = stream_info(out)
    video = info[0]
    assert video["codec"] == "prores" and video["profile"] == "HQ"
    assert video["pix_fmt"] == "yuv422p10le"
    assert (video["color_range"], video["color_primaries"], video["color_trc"],
            video["colorspace"]) == (1, 1, 1, 1)
    assert video["metadata"]["timecode"] == "01:00:00:00"
    assert any(s["type"] == "data" and s["metadata"].get("timecode") == "01:00:00:00"
               for s in info)  # a real tmcd track, as the source has
    assert_identity(src, out)
    # pixels: per frame, mean abs error over all samples of Y, Cb, Cr, on a 0-255 scale
    errors = frame_mae_255(decoded_planes(src), decoded_planes(out), depth=10)
    assert len(errors) == 12
    assert max(errors) <= 0.05, errors


def test_prores_roundtrip_error_on_real_footage(testdata, tmp_path):
    """The same bound on real faces (12 frames of a test clip made 10-bit ProRes HQ)."""
    with av.open(str(testdata / "videos" / "liveportrait_d0.mp4")) as c:
        images = [f.to_ndarray(format="rgb48le") for _, f in zip(range(12), c.decode(video=0))]
    src = make_video(tmp_path / "faces.mov", VideoSpec(
        images=images, width=images[0].shape[1], height=images[0].shape[0],
        codec="prores_ks", pix_fmt="yuv422p10le", options={"profile": "hq"},
        rate=Fraction(25), colour=PRORES_TAGS))
    copy_video(src, tmp_path / "out.mov")
    errors = frame_mae_255(decoded_planes(src), decoded_planes(tmp_path / "out.mov"), depth=10)
    assert max(errors) <= 0.05, errors


def test_prores_4444_keeps_profile(tmp_path):
    src = make_video(tmp_path / "in.mov", VideoSpec(
        n=4, width=64, height=64, codec="prores_ks", pix_fmt="yuv444p10le",
        options={"profile": "4444"}, deep=True))
    result = copy_video(src, tmp_path / "out.mov")
    video = stream_info(tmp_path / "out.mov")[0]
    assert video["profile"] == "4444" and video["pix_fmt"] == stream_info(src)[0]["pix_fmt"]
    assert result.frames_written == 4


# ---------------------------------------------------------------------------- rotation


def test_rotation_90_upright_in_processing_and_kept_in_output(tmp_path):
    spec = VideoSpec(n=10, width=96, height=64, rotation=90, audio=[AudioSpec(seconds=0.5)])
    src = make_video(tmp_path / "rot.mp4", spec)
    with VideoSource(src) as source:
        assert source.rotation == 90
        assert (source.width, source.height) == (64, 96)  # upright: portrait
        assert (source.coded_width, source.coded_height) == (96, 64)
        frames = list(source)
    with av.open(str(src)) as c:  # the coded picture, as PyAV decodes it (not rotated)
        coded = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert coded.shape == (64, 96, 3)
    assert frames[0].image.shape == (96, 64, 3) and frames[0].image.flags.c_contiguous
    # +90 is counter-clockwise: what a player shows (FFmpeg's autorotate "cclock")
    assert np.array_equal(frames[0].image, np.rot90(coded, 1))
    assert not np.array_equal(frames[0].image, np.rot90(coded, -1))

    out = tmp_path / "out.mp4"
    copy_video(src, out)
    with VideoSource(out) as back:
        assert back.rotation == 90
        assert back.display_matrix == VideoSource(src).display_matrix
        assert (back.coded_width, back.coded_height) == (96, 64)  # pixels not re-rotated
        again = next(iter(back))
    assert np.abs(again.image.astype(np.float64) - frames[0].image).mean() < 3
    assert_identity(src, out)


# ---------------------------------------------------------------------------- HEVC HDR


HDR10_PARAMS = ("log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
                "WP(15635,16450)L(10000000,50):max-cll=1000,400")


def hdr_side_data(path: Path) -> dict[str, bytes]:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return {str(sd.type): bytes(sd) for sd in frame.side_data
                if "MASTERING" in str(sd.type) or "LIGHT" in str(sd.type)}


def test_hevc_10bit_bt2020_pq_keeps_tags_and_depth(tmp_path):
    assert "libx265" in av.codecs_available, "this PyAV build has no libx265"
    tags = {"color_range": 1, "color_primaries": 9, "color_trc": 16, "colorspace": 9}
    src = make_video(tmp_path / "hdr.mp4", VideoSpec(
        n=8, width=128, height=72, codec="libx265", pix_fmt="yuv420p10le", deep=True,
        options={"x265-params": HDR10_PARAMS, "preset": "ultrafast"}, colour=tags))
    assert stream_info(src)[0]["color_trc"] == 16  # fixture is tagged
    source_hdr = hdr_side_data(src)
    assert len(source_hdr) == 2  # fixture carries HDR10 mastering display + light level
    with VideoSource(src) as source:
        assert source.bit_depth == 10
        assert (source.colour.primaries, source.colour.transfer, source.colour.matrix) == \
            (9, 16, 9)
        assert source.light_level == (1000, 400)
    copy_video(src, tmp_path / "out.mp4", EncodeOptions(preset="ultrafast"))
    video = stream_info(tmp_path / "out.mp4")[0]
    assert video["codec"] == "hevc" and video["pix_fmt"] == "yuv420p10le"
    assert (video["color_range"], video["color_primaries"], video["color_trc"],
            video["colorspace"]) == (1, 9, 16, 9)
    assert hdr_side_data(tmp_path / "out.mp4") == source_hdr  # HDR10 static metadata kept
    assert_identity(src, tmp_path / "out.mp4")


# ---------------------------------------------------------------------------- ranges


def long_gop(tmp_path: Path, n: int = 60, audio: bool = True) -> Path:
    return make_video(tmp_path / "gop.mp4", VideoSpec(
        n=n, rate=Fraction(25), options={"g": "48", "bf": "3", "sc_threshold": "0"},
        audio=[AudioSpec(seconds=n / 25 + 0.2)] if audio else []))


def test_frames_30_39_on_long_gop_with_b_frames(tmp_path):
    src = long_gop(tmp_path)
    all_times = frame_times(src)
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.has_b_frames  # fixture has B-frames
    result = copy_video(src, tmp_path / "out.mp4", range=RangeOptions(start=30, end=39))
    assert result.frames_written == 10
    out_times = frame_times(tmp_path / "out.mp4")
    assert out_times == all_times[30:40]
    # audio: only the packets that start inside the range's time span, bit-identical
    start, end = all_times[30], all_times[39] + Fraction(1, 25)
    src_audio = [p for p in stream_packets(src, "audio")[0] if start <= p[1] < end]
    out_audio = stream_packets(tmp_path / "out.mp4", "audio")[0]
    assert [p[1] for p in out_audio] == [p[1] for p in src_audio]
    assert [p[0] for p in out_audio] == [p[0] for p in src_audio]


def test_range_overlap_frames_are_decoded_but_not_written(tmp_path):
    src = long_gop(tmp_path, audio=False)
    with VideoSource(src, RangeOptions(start=50, end=52, overlap=5)) as source:
        frames = list(source)
        # the keyframe before 45 is frame 48: seeking must not lose frames 45-47
        assert [f.index for f in frames] == list(range(45, 53))
        assert [f.in_range for f in frames] == [False] * 5 + [True] * 3
        out = tmp_path / "out.mp4"
        with VideoSink(out, source) as sink:
            written = [sink.write(f) for f in frames]
    assert written == [False] * 5 + [True] * 3
    assert frame_times(out) == frame_times(src)[50:53]


def test_range_matches_full_decode_pixels(tmp_path):
    src = long_gop(tmp_path, audio=False)
    with VideoSource(src) as full:
        reference = {f.index: f.image for f in full}
    with VideoSource(src, RangeOptions(start=47, end=49)) as ranged:
        got = {f.index: f.image for f in ranged}
    assert sorted(got) == [47, 48, 49]
    for i, img in got.items():
        assert np.array_equal(img, reference[i])


def test_range_end_past_clip_is_clamped(tmp_path):
    src = long_gop(tmp_path, n=30, audio=False)
    with VideoSource(src, RangeOptions(start=25, end=1000)) as source:
        assert source.range.end == 29 and source.range.clamped
        assert [f.index for f in source] == [25, 26, 27, 28, 29]


def test_image_sequence_output_with_start_number(tmp_path):
    src = long_gop(tmp_path, n=30, audio=False)
    pattern = tmp_path / "seq" / "out_%06d.png"
    pattern.parent.mkdir()
    copy_video(src, pattern, range=RangeOptions(start=10, end=12))
    names = sorted(p.name for p in pattern.parent.iterdir())
    assert names == ["out_000010.png", "out_000011.png", "out_000012.png"]
    copy_video(src, tmp_path / "seq" / "x_%03d.png", EncodeOptions(start_number=1001),
               RangeOptions(start=0, end=1))
    assert (tmp_path / "seq" / "x_1001.png").exists() and (tmp_path / "seq" / "x_1002.png").exists()
    with av.open(str(pattern.parent / "out_000010.png")) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    with VideoSource(src, RangeOptions(start=10, end=10)) as source:
        assert np.array_equal(img, next(iter(source)).image)  # PNG is lossless


def test_deep_source_to_16bit_png_keeps_depth(tmp_path):
    src = make_video(tmp_path / "in.mov", VideoSpec(
        n=3, width=64, height=48, codec="prores_ks", pix_fmt="yuv422p10le",
        options={"profile": "hq"}, deep=True))
    copy_video(src, tmp_path / "f_%02d.png")
    with av.open(str(tmp_path / "f_00.png")) as c:
        frame = next(c.decode(video=0))
    assert frame.format.name == "rgb48be"


# ---------------------------------------------------------------------------- every codec


@pytest.mark.parametrize("codec, output", [
    ("h264", "out.mp4"), ("hevc", "out.mkv"), ("prores", "out.mov"), ("dnxhr", "out.mov"),
    ("ffv1", "out.mkv"), ("png", "f_%03d.png"), ("tiff", "f_%03d.tif"),
    ("exr", "f_%03d.exr"), ("dpx", "f_%03d.dpx"),
])
def test_every_codec_encodes_what_its_spec_says(tmp_path, codec, output):
    width, height = (256, 120) if codec == "dnxhr" else (64, 48)  # DNxHR's minimum size
    src = make_video(tmp_path / "in.mov", VideoSpec(
        n=3, width=width, height=height, codec="prores_ks", pix_fmt="yuv422p10le",
        options={"profile": "hq"}, deep=True, content="smooth", colour=PRORES_TAGS))
    options = EncodeOptions(codec=codec, preset="ultrafast" if codec in ("h264", "hevc")
                            else None)
    with VideoSource(src) as source:
        sink = VideoSink(tmp_path / output, source, options)
        with sink:
            for frame in source:
                sink.write(frame)
    first = tmp_path / (output % 0 if "%" in output else output)
    with av.open(str(first)) as c:
        frame = next(c.decode(video=0))
        assert frame.format.name == sink.spec.pix_fmt
        assert (frame.width, frame.height) == (width, height)
    if "%" in output:
        assert sorted(p.name for p in tmp_path.glob("f_*")) == [output % i for i in range(3)]
    else:
        assert len(frame_times(first)) == 3


def test_lossless_codec_round_trip_is_nearly_bit_exact(tmp_path):
    """FFV1 10-bit 4:2:2 → RGB48 → FFV1. The conversions lose nothing except where 4:2:2
    chroma, upsampled to RGB, falls outside the RGB cube (clipped): a few samples at the edge
    of the saturated blob, by at most a few code values."""
    src = make_video(tmp_path / "in.mkv", VideoSpec(
        n=6, width=96, height=64, codec="ffv1", pix_fmt="yuv422p10le", deep=True,
        content="smooth", colour=PRORES_TAGS))
    copy_video(src, tmp_path / "out.mkv")
    assert stream_info(tmp_path / "out.mkv")[0]["codec"] == "ffv1"
    a, b = decoded_planes(src), decoded_planes(tmp_path / "out.mkv")
    assert len(a) == len(b) == 6
    differing = sum(int((pa != pb).sum()) for fa, fb in zip(a, b) for pa, pb in zip(fa, fb))
    total = sum(pa.size for fa in a for pa in fa)
    assert differing / total < 0.01
    assert max(float(np.abs(pa - pb).max()) for fa, fb in zip(a, b)
               for pa, pb in zip(fa, fb)) <= 4
    assert all(np.array_equal(pa, pb) for pa, pb in zip(a[2], b[2]))  # unclipped frame: exact


def test_range_by_timecode_counts_from_the_clips_start_timecode(tmp_path):
    src = make_video(tmp_path / "tc.mov", VideoSpec(
        n=30, width=64, height=48, codec="prores_ks", pix_fmt="yuv422p10le",
        options={"profile": "proxy"}, rate=Fraction(25), timecode="01:00:00:00", deep=True))
    rng = RangeOptions(start_timecode="01:00:00:10", end_timecode="01:00:00:12")
    with VideoSource(src, rng) as source:
        assert [f.index for f in source] == [10, 11, 12]
    result = copy_video(src, tmp_path / "out.mov", range=rng)
    assert result.frames_written == 3
    # the output's timecode is that of its first frame
    assert stream_info(tmp_path / "out.mov")[0]["metadata"]["timecode"] == "01:00:00:10"


def test_full_range_source_keeps_range_and_levels(tmp_path):
    """A full-range (pc) H.264 stays full range: same tag, same luma levels (a limited-range
    misread would squeeze them by 219/255, about 10 levels on this picture)."""
    src = make_video(tmp_path / "full.mp4", VideoSpec(
        n=6, content="smooth", colour={"color_range": 2, "colorspace": 1,
                                       "color_primaries": 1, "color_trc": 1}))
    copy_video(src, tmp_path / "out.mp4")
    assert stream_info(tmp_path / "out.mp4")[0]["color_range"] == 2
    a, b = decoded_planes(src), decoded_planes(tmp_path / "out.mp4")
    luma_error = max(np.abs(fa[0] - fb[0]).mean() for fa, fb in zip(a, b))
    assert luma_error < 1.5, luma_error
