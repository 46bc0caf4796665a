"""Encoder choice (pure builders, no frame encoded), timecode and orientation helpers."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from gpen_video.errors import UsageError
from gpen_video.media.codecs import (
    CONTAINERS,
    ENCODER_PIX_FMTS,
    ENCODERS,
    SourceVideoInfo,
    choose_encoder,
    is_image_sequence,
    pix_fmt_layout,
)
from gpen_video.media.orientation import Orientation
from gpen_video.media.timecode import (
    add_frames,
    format_timecode,
    frame_number,
    parse_timecode,
)
from gpen_video.options import EncodeOptions

H264 = SourceVideoInfo("h264", "High", "yuv420p", 8)
HEVC10 = SourceVideoInfo("hevc", "Main 10", "yuv420p10le", 10)
PRORES_HQ = SourceVideoInfo("prores", "HQ", "yuv422p10le", 10)
PRORES_4444 = SourceVideoInfo("prores", "4444", "yuv444p12le", 12)
DNXHR_HQX = SourceVideoInfo("dnxhd", "DNXHR HQX", "yuv422p10le", 10)
DNXHD = SourceVideoInfo("dnxhd", "DNXHD", "yuv422p", 8)
VP9 = SourceVideoInfo("vp9", "Profile 0", "yuv420p", 8)


# ---------------------------------------------------------------------------- defaults


def test_h264_follows_source_with_crf_18():
    spec = choose_encoder(H264, "out.mp4")
    assert (spec.encoder, spec.pix_fmt, spec.container) == ("libx264", "yuv420p", "mp4")
    assert spec.options == {"crf": "18"} and spec.notes == ()


def test_hevc_keeps_10_bit():
    spec = choose_encoder(HEVC10, "out.mp4")
    assert (spec.encoder, spec.pix_fmt) == ("libx265", "yuv420p10le")
    assert spec.options["crf"] == "18" and spec.notes == ()


def test_prores_same_profile_in_mov():
    spec = choose_encoder(PRORES_HQ, "out.mov")
    assert (spec.encoder, spec.pix_fmt, spec.container) == ("prores_ks", "yuv422p10le", "mov")
    assert spec.options["profile"] == "hq" and int(spec.options["bits_per_mb"]) > 0
    for profile, option in [("Proxy", "proxy"), ("LT", "lt"), ("Standard", "standard"),
                            ("XQ", "4444xq")]:
        src = SourceVideoInfo("prores", profile, "yuv422p10le", 10)
        assert choose_encoder(src, "o.mov").options["profile"] == option


def test_prores_4444_12_bit_source_notes_the_10_bit_encoder():
    spec = choose_encoder(PRORES_4444, "out.mov")
    assert spec.options["profile"] == "4444" and spec.pix_fmt == "yuv444p10le"
    assert any("12-bit source, 10-bit output" in n for n in spec.notes)


def test_prores_into_mp4_falls_back_to_h264_keeping_depth_and_chroma():
    spec = choose_encoder(PRORES_HQ, "out.mp4")
    assert spec.encoder == "libx264" and spec.pix_fmt == "yuv422p10le"
    assert any("cannot hold prores" in n for n in spec.notes)


def test_dnxhr_same_profile_and_dnxhd_becomes_dnxhr():
    spec = choose_encoder(DNXHR_HQX, "out.mov")
    assert (spec.encoder, spec.pix_fmt, spec.options["profile"]) == \
        ("dnxhd", "yuv422p10le", "dnxhr_hqx")
    spec = choose_encoder(DNXHD, "out.mov")
    assert spec.options["profile"] == "dnxhr_hq" and spec.pix_fmt == "yuv422p"
    assert any("DNxHR" in n for n in spec.notes)


def test_other_sources_become_h264_crf_18():
    mpeg4 = SourceVideoInfo("mpeg4", "Simple Profile", "yuv420p", 8)
    spec = choose_encoder(mpeg4, "out.mkv")
    assert (spec.encoder, spec.options["crf"], spec.container) == ("libx264", "18", "matroska")
    # VP9 has an encoder here (issue 34): kept in Matroska
    assert choose_encoder(VP9, "out.mkv").encoder == "libvpx-vp9"


def test_full_range_jpeg_formats_map_to_plain_yuv():
    spec = choose_encoder(SourceVideoInfo("mjpeg", None, "yuvj422p", 8), "out.mp4")
    assert spec.pix_fmt == "yuv422p"


def test_ffv1_keeps_even_16_bit():
    src = SourceVideoInfo("ffv1", None, "yuv444p16le", 16)
    spec = choose_encoder(src, "out.mkv")
    assert (spec.encoder, spec.pix_fmt) == ("ffv1", "yuv444p16le")


# ---------------------------------------------------------------------------- overrides


def test_explicit_codec_crf_preset_pix_fmt():
    spec = choose_encoder(H264, "out.mkv", EncodeOptions(codec="hevc", crf=22, preset="fast",
                                                         pix_fmt="yuv444p10le"))
    assert spec.encoder == "libx265" and spec.pix_fmt == "yuv444p10le"
    assert spec.options["crf"] == "22" and spec.options["preset"] == "fast"
    spec = choose_encoder(H264, "out.mov", EncodeOptions(codec="prores"))
    assert spec.options["profile"] == "hq" and spec.pix_fmt == "yuv422p10le"
    spec = choose_encoder(H264, "out.mov", EncodeOptions(codec="dnxhr"))
    assert spec.options["profile"] == "dnxhr_hq"
    spec = choose_encoder(H264, "out.mkv", EncodeOptions(codec="ffv1"))
    assert spec.pix_fmt == "yuv420p"


@pytest.mark.parametrize("options, output, words", [
    (EncodeOptions(codec="prores"), "out.mp4", [".mov"]),
    (EncodeOptions(codec="dnxhr"), "out.mkv", [".mov"]),
    (EncodeOptions(codec="mpeg2"), "out.mp4", ["h264", "hevc", "prores", "vp9"]),
    (EncodeOptions(codec="vp9"), "out.mp4", [".mkv", ".webm"]),
    (EncodeOptions(codec="prores", crf=10), "out.mov", ["--crf"]),
    (EncodeOptions(codec="ffv1", preset="fast"), "out.mkv", ["--preset"]),
    (EncodeOptions(pix_fmt="rgb24"), "out.mp4", ["yuv420p", "--pix-fmt"]),
    (EncodeOptions(), "out.avi2", [".mp4", ".mov"]),
    (EncodeOptions(codec="png"), "out_%04d.exr", ["does not match"]),
    (EncodeOptions(codec="h264"), "out_%04d.png", [".png", ".exr"]),
])
def test_bad_choices_are_usage_errors_that_list_the_way_out(options, output, words):
    with pytest.raises(UsageError) as exc:
        choose_encoder(H264, output, options)
    assert exc.value.exit_code == 2 and "\n" not in str(exc.value)
    for word in words:
        assert word in str(exc.value)


def test_hdr10_metadata_goes_to_x265_params():
    src = SourceVideoInfo("hevc", "Main 10", "yuv420p10le", 10, mastering_display=(
        (0.68, 0.32, 0.265, 0.69, 0.15, 0.06, 0.3127, 0.329), (0.005, 1000.0)),
        light_level=(1000, 400))
    params = choose_encoder(src, "out.mkv").options["x265-params"]
    assert params == ("log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
                      "WP(15635,16450)L(10000000,50):max-cll=1000,400")
    spec = choose_encoder(src, "out.mov", EncodeOptions(codec="prores"))
    assert any("HDR" in n for n in spec.notes)


def test_alpha_is_noted():
    spec = choose_encoder(SourceVideoInfo("prores", "4444", "yuva444p12le", 12), "out.mov")
    assert any("alpha" in n for n in spec.notes)


def test_dnxhr_size_limit_is_a_usage_error():
    small = SourceVideoInfo("h264", "High", "yuv420p", 8, width=64, height=48)
    with pytest.raises(UsageError, match="256x120"):
        choose_encoder(small, "out.mov", EncodeOptions(codec="dnxhr"))


def test_image_sequences():
    assert is_image_sequence("shots/out_%06d.png") and not is_image_sequence("out.png")
    assert choose_encoder(H264, "f_%06d.png").pix_fmt == "rgb24"
    assert choose_encoder(PRORES_HQ, "f_%06d.png").pix_fmt == "rgb48be"
    assert choose_encoder(PRORES_HQ, "f_%06d.tif").pix_fmt == "rgb48le"
    assert choose_encoder(PRORES_HQ, "f_%06d.exr").pix_fmt == "gbrpf32le"
    assert choose_encoder(PRORES_HQ, "f_%06d.dpx").pix_fmt == "gbrp10le"
    assert choose_encoder(H264, "f_%06d.dpx").pix_fmt == "rgb24"
    spec = choose_encoder(H264, "f_%d.png", EncodeOptions(codec="png"))
    assert spec.image_sequence and spec.container == "image2" and spec.notes == ()


def test_pix_fmt_layout():
    assert pix_fmt_layout("yuv422p10le") == ("422", 10)
    assert pix_fmt_layout("yuvj420p") == ("420", 8)
    assert pix_fmt_layout("gbrp12le") == ("rgb", 12)
    assert pix_fmt_layout("rgb48le") == ("rgb", 16)
    assert pix_fmt_layout("nv12") == ("420", 8)
    assert pix_fmt_layout("gray10le") == ("gray", 10)


# ---------------------------------------------------------------------------- tables vs build


def test_pix_fmt_table_matches_this_ffmpeg_build():
    for encoder, formats in ENCODER_PIX_FMTS.items():
        accepted = {f.name for f in av.Codec(encoder, "w").video_formats}
        assert set(formats) <= accepted, (encoder, set(formats) - accepted)


def test_container_table_matches_the_muxers(tmp_path):
    for suffix, (muxer, families) in CONTAINERS.items():
        with av.open(str(tmp_path / f"probe{suffix}"), "w", format=muxer) as out:
            supported = out.supported_codecs
        for family in families:
            assert ENCODERS[family] in supported, (suffix, family)


# ---------------------------------------------------------------------------- timecode


def test_timecode_parse_format_and_add():
    assert parse_timecode("01:00:00:00", 25) == 90000
    assert format_timecode(90000, 25) == "01:00:00:00"
    assert add_frames("01:00:00:00", 30, 25) == "01:00:01:05"
    assert add_frames("23:59:59:24", 1, 25) == "00:00:00:00"  # wraps like timecode does
    assert frame_number("01:00:01:00", Fraction(25), origin="01:00:00:00") == 25
    assert frame_number("42", 25) == 42 and frame_number(7, 25) == 7


def test_drop_frame_timecode():
    ntsc = Fraction(30000, 1001)
    assert parse_timecode("00:01:00;02", ntsc) == 1800
    assert parse_timecode("00:10:00;00", ntsc) == 17982
    for n in (0, 1799, 1800, 17981, 17982, 107892):
        assert parse_timecode(format_timecode(n, ntsc, drop_frame=True), ntsc) == n
    assert add_frames("00:00:59;29", 1, ntsc) == "00:01:00;02"


@pytest.mark.parametrize("text", ["1:2:3", "01:00:00:25", "01:61:00:00", "00:01:00;00", "ab"])
def test_bad_timecodes(text):
    with pytest.raises(UsageError):
        parse_timecode(text, Fraction(30000, 1001) if ";" in text else 25)


def test_timecode_before_origin_is_refused():
    with pytest.raises(UsageError):
        frame_number("00:59:59:00", 25, origin="01:00:00:00")


# ---------------------------------------------------------------------------- orientation


def _matrix(degrees: float, hflip: bool = False, vflip: bool = False) -> tuple[int, ...] | None:
    """The display matrix PyAV writes for a rotation (counter-clockwise) and flips."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/m.mp4"
        with av.open(path, "w") as out:
            s = out.add_stream("libx264", rate=1)
            s.width, s.height, s.pix_fmt = 16, 8, "yuv420p"
            s.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
            f = av.VideoFrame.from_ndarray(np.zeros((8, 16, 3), np.uint8), format="rgb24")
            f.pts = 0
            out.mux(s.encode(f))
            out.mux(s.encode(None))
        with av.open(path) as c:
            frame = next(c.decode(video=0))
            from gpen_video.media.orientation import parse_display_matrix

            side = [sd for sd in frame.side_data if "DISPLAYMATRIX" in str(sd.type)]
            return parse_display_matrix(bytes(side[0])) if side else None  # identity


def test_orientation_matches_ffmpeg_autorotate():
    image = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    cases = {
        (90, False): np.rot90(image, 1),  # FFmpeg: transpose=cclock
        (-90, False): np.rot90(image, -1),  # transpose=clock
        (180, False): np.rot90(image, 2),  # hflip + vflip
        (0, True): image[:, ::-1],  # hflip
    }
    for (degrees, hflip), expected in cases.items():
        o = Orientation.from_matrix(_matrix(degrees, hflip))
        assert o.applied
        assert np.array_equal(o.to_upright(image), expected), (degrees, hflip)
        assert o.upright_size(3, 2) == expected.shape[1::-1]


def test_orientation_inverse_for_all_eight():
    image = np.random.default_rng(0).integers(0, 65535, (5, 7, 3), np.uint16)
    for degrees in (0, 90, 180, 270):
        for hflip in (False, True):
            o = Orientation.from_matrix(_matrix(degrees, hflip))
            up = o.to_upright(image)
            assert up.flags.c_contiguous and up.dtype == np.uint16
            assert np.array_equal(o.to_coded(up), image)
    odd = Orientation.from_matrix((46341, 46341, 0, -46341, 46341, 0, 0, 0, 1 << 30))  # 45°
    assert not odd.applied and odd.is_identity
