"""VFX plates in, comp-ready passes out (issue 34): stills, image sequences, EXR in scene-linear
through OpenColorIO, alpha kept, matte and patch passes.

Every input is made here (PyAV, numpy, OpenEXR); faces are a real photo placed in the frame; runs
use the identity restorer and the real MobileNet detector on the CPU.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from gpen_video import pipeline
from gpen_video.errors import InputError, OutputError, UsageError
from gpen_video.media import VideoSource
from gpen_video.media.scene_linear import DisplayEncoding, representable
from gpen_video.media.sequence import ImageSequenceSource, to_printf
from gpen_video.media.stills import Picture, add_dpx_industry, read_picture, write_picture
from gpen_video.options import EncodeOptions, PassOptions, PlateOptions, RangeOptions
from tests.geometry import psnr
from tests.pipeline_helpers import read_frames, run_options
from tests.plate_helpers import (CORNER, acescg_plate, corners, deep_picture, face_frame,
                                 read_exr, write_exr_sequence, write_sequence)


def _grey(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="gray16le")


# ------------------------------------------------------------------ the crash (TIFF, JPEG)


@pytest.mark.parametrize("suffix, codec, pix_fmt", [
    (".tif", "tiff", "rgb48le"), (".tif", "tiff", "rgb24"), (".jpg", "mjpeg", "yuvj420p")])
def test_tiff_and_jpeg_files_open_without_the_side_data_crash(tmp_path, suffix, codec,
                                                               pix_fmt):
    # FFmpeg 8 attaches EXIF side data to these; PyAV 18.1 raised "31 is not a valid Type"
    deep = pix_fmt == "rgb48le"
    image = (np.random.default_rng(1).random((40, 56, 3)) * (65535 if deep else 255)).astype(
        np.uint16 if deep else np.uint8)
    path = tmp_path / f"frame{suffix}"
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 56, 40, pix_fmt
        frame = av.VideoFrame.from_ndarray(image, format="rgb48le" if deep else "rgb24")
        out.mux(stream.encode(frame.reformat(format=pix_fmt)))
        out.mux(stream.encode(None))
    with VideoSource(path) as source:
        frames = list(source)
    assert len(frames) == 1 and frames[0].image.shape == (40, 56, 3)
    if codec == "tiff":  # lossless: the very samples come back
        assert np.array_equal(frames[0].image, image)
    # and through the sequence source too (a still)
    (still,) = list(ImageSequenceSource(path))
    assert still.image.shape == (40, 56, 3) and still.number is None


def test_real_jpeg_photo_opens(testdata):
    with VideoSource(testdata / "images" / "codeformer_whole_00.jpg") as source:
        (frame,) = list(source)
    assert frame.image.shape == (310, 491, 3)


# ------------------------------------------------------------------ sequences: names, numbers


@pytest.mark.parametrize("pattern", ["shot.%04d.png", "shot.####.png", "shot.@.png", "."])
def test_every_pattern_style_and_a_folder_name_the_same_frames(tmp_path, pattern):
    pictures = [Picture(np.full((8, 12, 3), k * 20, np.uint8)) for k in range(4)]
    write_sequence(tmp_path, "shot.%04d.png", pictures, first=1001)
    source = ImageSequenceSource(tmp_path / pattern if pattern != "." else tmp_path)
    frames = list(source)
    assert [f.number for f in frames] == [1001, 1002, 1003, 1004]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 20, 40, 60]
    assert source.fps == 24 and "default" in source.fps_source
    assert to_printf("a.####.exr") == "a.%04d.exr" and to_printf("a.@.exr") == "a.%d.exr"


def test_frames_take_the_files_own_numbers(tmp_path):
    write_sequence(tmp_path, "shot.%04d.png",
                   [Picture(np.full((8, 12, 3), k, np.uint8)) for k in range(6)])
    source = ImageSequenceSource(tmp_path / "shot.####.png", RangeOptions(start=1002, end=1004),
                                 fps=Fraction(25))
    frames = [f for f in source if f.in_range]
    assert [f.number for f in frames] == [1002, 1003, 1004]
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3]
    assert source.output_frame_count == 3 and source.fps == 25
    with pytest.raises(UsageError, match="holds frames 1001-1006"):
        ImageSequenceSource(tmp_path / "shot.####.png", RangeOptions(start=0, end=10))


def test_missing_frames_are_listed_in_one_error_or_concealed(tmp_path):
    write_sequence(tmp_path, "shot.%04d.png",
                   [Picture(np.full((8, 12, 3), k, np.uint8)) for k in range(8)],
                   skip=(1003, 1004, 1007))
    with pytest.raises(InputError, match=r"3 frame\(s\) missing .*1003, 1004, 1007.*conceal"):
        ImageSequenceSource(tmp_path / "shot.####.png")
    source = ImageSequenceSource(tmp_path / "shot.####.png", errors="conceal")
    frames = list(source)
    assert [f.number for f in frames] == list(range(1001, 1009))
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 1, 1, 4, 5, 5, 7]
    assert source.concealed_frames == [2, 3, 6]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no files match"),
    (lambda d: [write_picture(d / "a.0001.png", Picture(np.zeros((4, 4, 3), np.uint8))),
                write_picture(d / "b.0001.png", Picture(np.zeros((4, 4, 3), np.uint8)))],
     "holds 2 image sequences"),
    (lambda d: [write_picture(d / "shot.0001.png", Picture(np.zeros((4, 4, 3), np.uint8))),
                write_picture(d / "shot.0002.png", Picture(np.zeros((4, 6, 3), np.uint8)))],
     "every frame must have one size"),
])
def test_sequence_refusals_are_clear(tmp_path, make, message):
    make(tmp_path)
    where = tmp_path if "2 image" in message else tmp_path / "shot.####.png"
    with pytest.raises(InputError, match=message):
        list(ImageSequenceSource(where))


# ------------------------------------------------------------------ integer plates end to end


def test_16bit_rgba_png_sequence_keeps_alpha_depth_numbers_and_corners(testdata, tmp_path):
    pictures = [deep_picture(face_frame(testdata, shift=k), seed=k) for k in range(4)]
    write_sequence(tmp_path, "shot.%04d.png", pictures, first=1001)
    out = tmp_path / "out.####.tif"
    summary = pipeline.run(run_options(
        testdata, tmp_path / "shot.####.png", out, backend="identity", frames=(1002, 1004),
        passes=PassOptions(matte=tmp_path / "matte.####.png")))
    assert summary.frames == 3 and summary.faces == 3
    for number, picture in zip((1002, 1003, 1004), pictures[1:]):
        got = read_picture(tmp_path / f"out.{number}.tif")
        assert got.pix_fmt == "rgba64le" and got.rgb.dtype == np.uint16
        assert np.array_equal(got.alpha, picture.alpha)  # alpha bit for bit
        for a, b in zip(corners(got.rgb), corners(picture.rgb)):
            assert np.array_equal(a, b)
        matte = _grey(tmp_path / f"matte.{number}.png")
        assert matte.max() == 65535
        assert np.array_equal(got.rgb[matte == 0], picture.rgb[matte == 0])
        assert np.all(matte[np.any(got.rgb != picture.rgb, axis=-1)] > 0)
    assert not (tmp_path / "out.1001.tif").exists()


def test_dpx_10bit_sequence_with_a_hole_concealed_keeps_its_packing(testdata, tmp_path):
    pictures = [Picture(face_frame(testdata, shift=k).astype(np.uint16) * 200 + 4096 * k)
                for k in range(3)]  # each frame a different level
    written = write_sequence(tmp_path, "plate.%04d.dpx", pictures, first=1, skip=(2,),
                             pix_fmt="gbrp10le")
    # a scanner's film/TV headers (FFmpeg writes none): 30 fps, timecode 01:00:00:05
    industry = bytearray(b"\xff" * 384)
    struct.pack_into("<f", industry, 1724 - 1664, 30.0)
    struct.pack_into("<I", industry, 1920 - 1664, 0x01000005)
    for path in written:
        add_dpx_industry(path, bytes(industry))
    probe = ImageSequenceSource(tmp_path / "plate.%04d.dpx", errors="conceal")
    assert probe.fps == 30 and probe.fps_source == "the files' headers"
    assert probe.timecode == "01:00:00:05"
    out = tmp_path / "out.%04d.dpx"
    options = run_options(testdata, tmp_path / "plate.%04d.dpx", out, backend="identity",
                          plate=PlateOptions(missing="conceal", fps=Fraction(25)))
    summary = pipeline.run(options)
    assert summary.frames == 3
    src = [read_picture(tmp_path / "plate.0001.dpx"), read_picture(tmp_path / "plate.0003.dpx")]
    got = [read_picture(tmp_path / f"out.000{n}.dpx") for n in (1, 2, 3)]
    assert all(g.pix_fmt == "gbrp10le" and g.bit_depth == 10 for g in got)
    for a, b in zip(corners(got[0].rgb), corners(src[0].rgb)):
        assert np.array_equal(a, b)
    # frame 2 concealed: frame 1 repeated (compared above the face; frame 3 differs there)
    assert np.array_equal(got[1].rgb[:40], src[0].rgb[:40])
    assert not np.array_equal(got[1].rgb[:40], src[1].rgb[:40])
    assert "fps 25 from --fps" in summary.video
    for n in (1, 2, 3):  # the film/TV headers written back, byte for byte
        assert (tmp_path / f"out.000{n}.dpx").read_bytes()[1664:2048] == bytes(industry)


def test_a_still_photo_in_and_out(testdata, tmp_path):
    src = testdata / "images" / "gfpgan_whole_Blake_Lively.jpg"
    out = tmp_path / "restored.png"
    summary = pipeline.run(run_options(testdata, src, out, backend="identity"))
    assert summary.frames == 1 and summary.faces >= 1
    got, original = read_picture(out), read_picture(src)
    assert got.rgb.shape == original.rgb.shape and got.pix_fmt == "rgb24"
    for a, b in zip(corners(got.rgb, 8), corners(original.rgb, 8)):
        assert np.array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["restored.png"]


def test_output_refusals_say_what_to_do(testdata, tmp_path):
    write_sequence(tmp_path, "s.%04d.png", [deep_picture(face_frame(testdata))] * 2)
    src = tmp_path / "s.####.png"
    cases = [
        (tmp_path / "one.png", UsageError, "names one file but the input has 2 frames"),
        (tmp_path / "o.####.jpg", UsageError, "has alpha and JPEG cannot hold it"),
        (tmp_path / "o.####.exr", UsageError, "EXR output is for EXR plates"),
        (tmp_path / "s.####.png", OutputError, "already exists|is an input file"),
    ]
    for out, error, message in cases:
        with pytest.raises(error, match=message):
            pipeline.run(run_options(testdata, src, out, backend="identity"))
    with pytest.raises(UsageError, match="--matte .* a pattern"):
        pipeline.run(run_options(testdata, src, tmp_path / "o.####.png", backend="identity",
                                 passes=PassOptions(matte=tmp_path / "matte.png")))
    with pytest.raises(UsageError, match="--matte-layer is for EXR output"):
        pipeline.run(run_options(testdata, src, tmp_path / "o.####.png", backend="identity",
                                 passes=PassOptions(matte_layer="gpen")))
    movie = tmp_path / "clip.mov"
    with pytest.raises(UsageError, match="--fps is for image sequences"):
        pipeline.run(run_options(testdata, movie, tmp_path / "o.mov", backend="identity",
                                 plate=PlateOptions(fps=Fraction(24))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.1001.png", "s.1002.png"]


# ------------------------------------------------------------------ EXR, scene-linear, OCIO


@pytest.mark.parametrize("half, compression, written", [
    (True, "PIZ_COMPRESSION", "PIZ_COMPRESSION"),
    (False, "DWAA_COMPRESSION", "ZIP_COMPRESSION")])  # lossy DWA: written losslessly
def test_acescg_exr_plate_round_trip_through_ocio(testdata, tmp_path, half, compression,
                                                  written):
    """Done-when 2 (and the EXR items of 1): half/float, compression, attributes, extra
    channel, alpha, values > 1 and < 0, the face core within the 8-bit identity test's PSNR,
    bit-exact outside the masks, matte and patch exact."""
    import OpenEXR

    write_exr_sequence(tmp_path, acescg_plate(testdata, n=3, half=half),
                       compression=compression)
    # the plate as stored (DWAA is lossy: what the file holds is the input)
    plate = []
    for number in (1001, 1002, 1003):
        _, ch = read_exr(tmp_path / f"shot.{number}.exr")
        plate.append((np.stack([ch[c] for c in "RGB"], -1), ch["A"]))
    summary = pipeline.run(run_options(
        testdata, tmp_path / "shot.####.exr", tmp_path / "out.####.exr", backend="identity",
        passes=PassOptions(matte=tmp_path / "matte.####.exr",
                           patch=tmp_path / "patch.####.exr", matte_layer="gpen")))
    assert summary.frames == 3 and summary.faces == 3
    assert "ACEScg (the EXR's chromaticities)" in summary.video
    assert "face pixels kept at their input value" in summary.video  # the 3.0 highlight
    assert ("written as ZIP" in summary.video) == (written != compression)
    enc = DisplayEncoding.create("ACEScg", {}, env={})
    for k, (rgb, alpha) in enumerate(plate):
        number = 1001 + k
        header_in, channels_in = read_exr(tmp_path / f"shot.{number}.exr")
        header, channels = read_exr(tmp_path / f"out.{number}.exr")
        for key in ("owner", "shot_note", "chromaticities"):
            assert header[key] == header_in[key], key
        assert header["compression"] == getattr(OpenEXR, written)
        assert list(header["framesPerSecond"]) == [25, 1]
        assert header["timeCode"].frame == k
        assert all(channels[c].dtype == (np.float16 if half else np.float32) for c in "RGBA")
        assert np.array_equal(channels["A"], alpha) and np.array_equal(
            channels["depth.Z"], channels_in["depth.Z"])
        out = np.stack([channels[c] for c in "RGB"], -1)
        assert np.array_equal(out[:CORNER, :CORNER], rgb[:CORNER, :CORNER])  # 1.672 kept
        assert out[0, -1, 0] == rgb[0, -1, 0] and out[-1, -1, 0] == rgb[-1, -1, 0]
        assert out[0, -1, 0] > 7 and out[-1, -1, 0] < -0.04
        assert np.array_equal(out[112:118, 150:170], rgb[112:118, 150:170])  # 3.0 kept
        _, matte_ch = read_exr(tmp_path / f"matte.{number}.exr")
        matte = matte_ch["Y"]
        assert np.array_equal(channels["gpen.Y"], matte)  # --matte-layer: the same matte
        outside, core = matte == 0, matte >= 0.999
        assert outside.sum() > 0 and core.sum() > 5000
        assert np.array_equal(out[outside], rgb[outside])  # float bit-exact
        assert np.all(matte[np.any(out != rgb, axis=-1)] > 0)
        a, b = enc.to_display(out[core]), enc.to_display(rgb[core])
        fine = representable(a) & representable(b)
        assert psnr(a[fine] * 255, b[fine] * 255) >= 40.0
        _, patch = read_exr(tmp_path / f"patch.{number}.exr")
        over = np.stack([patch[c] for c in "RGB"], -1) + \
            (1 - patch["A"])[..., None] * rgb.astype(np.float32)
        assert np.abs(over - out.astype(np.float32)).max() <= 4e-3 * max(
            1.0, float(np.abs(rgb).max()))


def test_exr_plates_are_refused_where_they_would_clip(testdata, tmp_path):
    write_exr_sequence(tmp_path, acescg_plate(testdata, n=1))
    for out, message in ((tmp_path / "o.####.png", "would clip it"),
                         (tmp_path / "o.mov", "a movie would clip it")):
        with pytest.raises(UsageError, match=message):
            pipeline.run(run_options(testdata, tmp_path / "shot.####.exr", out,
                                     backend="identity"))
    with pytest.raises(UsageError, match="not in OCIO config.*ACEScg"):
        ImageSequenceSource(tmp_path / "shot.####.exr", colorspace="NoSuchSpace")


def test_ocio_round_trip_is_the_exact_inverse_and_honours_the_env(tmp_path):
    enc = DisplayEncoding.create(None, {}, env={})
    assert enc.space == "ACEScg" and enc.why == "the config's scene_linear role"
    x = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    assert np.abs(enc.from_display(enc.to_display(x)) - x).max() < 1e-4
    with pytest.raises(UsageError, match="cannot be loaded"):
        DisplayEncoding.create(None, {}, env={"OCIO": str(tmp_path / "missing.ocio")})


# ------------------------------------------------------------------ passes on a real clip


def _passes_on_real_clip(testdata, tmp_path, frames):
    src = testdata / "videos" / "liveportrait_d0.mp4"
    out = tmp_path / "out.mov"
    summary = pipeline.run(run_options(
        testdata, src, out, backend="identity", codec="png", frames=frames,
        passes=PassOptions(matte=tmp_path / "matte.####.png",
                           patch=tmp_path / "patch.####.png")))
    source = {f.index: f.image for f in read_frames(src)}
    result = read_frames(out)
    assert summary.frames == len(result) > 0
    first = frames[0] if frames else 0
    touched = 0
    for k, frame in enumerate(result):
        index = first + k
        original = source[index]
        matte = _grey(tmp_path / f"matte.{index:04d}.png")
        assert np.array_equal(frame.image[matte == 0], original[matte == 0])
        differs = np.any(frame.image != original, axis=-1)
        assert np.all(matte[differs] > 0)
        touched += int(differs.sum())
        patch = read_picture(tmp_path / f"patch.{index:04d}.png")
        premult = patch.rgb.astype(np.float64) / 65535
        a = patch.alpha.astype(np.float64)[..., None] / 65535
        over = (premult + (1 - a) * original / 255.0) * 255.0
        assert np.abs(over - frame.image).max() <= 1.01  # within rounding
    assert touched > 0


def test_matte_and_patch_on_a_real_clip_are_frame_exact(testdata, tmp_path):
    _passes_on_real_clip(testdata, tmp_path, (10, 21))


@pytest.mark.slow
def test_matte_and_patch_on_every_frame_of_a_real_clip(testdata, tmp_path):
    _passes_on_real_clip(testdata, tmp_path, None)


def test_pass_writers_check_their_names(tmp_path):
    from gpen_video.media.passes import check_pass

    with pytest.raises(UsageError, match="a matte sequence is .png, .tif or .exr"):
        check_pass("matte", tmp_path / "m.####.jpg", tmp_path / "o.mov")
    with pytest.raises(UsageError, match="or a .mov movie"):
        check_pass("patch", tmp_path / "p.mkv", tmp_path / "o.mov")
    (tmp_path / "m.mkv").write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        check_pass("matte", tmp_path / "m.mkv", tmp_path / "o.mov")


def test_start_number_renumbers_the_output(testdata, tmp_path):
    write_sequence(tmp_path, "s.%04d.png", [Picture(np.full((16, 16, 3), k, np.uint8))
                                            for k in range(3)], first=1001)
    from gpen_video.media.sequence_sink import ImageSequenceSink

    source = ImageSequenceSource(tmp_path / "s.####.png")
    with ImageSequenceSink(tmp_path / "o.%06d.png", source, EncodeOptions(start_number=1)) as sink:
        for frame in source:
            sink.write(frame)
    assert sorted(p.name for p in tmp_path.glob("o.*")) == [
        "o.000001.png", "o.000002.png", "o.000003.png"]
    assert int(read_picture(tmp_path / "o.000003.png").rgb[0, 0, 0]) == 2


# ------------------------------------------------------------------ alpha through a movie


def test_prores_4444_alpha_comes_back_bit_identical(testdata, tmp_path):
    from gpen_video.media.alpha import plane_samples

    rng = np.random.default_rng(3)
    src = tmp_path / "in.mov"
    with av.open(str(src), "w") as c:
        s = c.add_stream("prores_ks", rate=25, options={"profile": "4444"})
        s.width, s.height, s.pix_fmt = 320, 288, "yuva444p10le"
        for k in range(4):
            rgba = np.dstack([face_frame(testdata, shift=k).astype(np.uint16) * 257,
                              rng.integers(0, 65536, (288, 320)).astype(np.uint16)])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba64le")
            frame = frame.reformat(format="yuva444p10le")
            frame.pts, frame.time_base = k, Fraction(1, 25)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    out = tmp_path / "out.mov"
    summary = pipeline.run(run_options(testdata, src, out, backend="identity"))
    assert summary.frames == 4 and summary.faces == 4
    assert summary.video == "prores → prores (alpha kept)"
    with av.open(str(src)) as a, av.open(str(out)) as b:
        before = [plane_samples(f, 3) for f in a.decode(video=0)]
        after = [(f.format.name, plane_samples(f, 3)) for f in b.decode(video=0)]
        assert b.streams.video[0].profile == "4444"
    assert len(after) == 4 and all(name.startswith("yuva444p") for name, _ in after)
    assert all(np.array_equal(x, y) for x, (_, y) in zip(before, after))
    assert len({int(x.std() > 0) for x in before}) == 1 and before[0].std() > 100  # real alpha


# ------------------------------------------------------------------ the command line


def test_cli_plates_options_and_refusals(tmp_path, capsys):
    from gpen_video.cli import main
    from gpen_video.commands.run import configure, options_from_args
    from gpen_video.errors import EXIT_USAGE
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["shot.####.exr", "out.####.exr", "--fps", "24000/1001",
                              "--colorspace", "ACEScg", "--start-number", "1",
                              "--matte", "m.####.exr", "--patch", "p.####.exr",
                              "--frames", "1001-1100"])
    options = options_from_args(args)
    assert options.plate == PlateOptions(fps=Fraction(24000, 1001), colorspace="ACEScg",
                                         missing="fail")
    assert options.passes.paths() == {"matte": Path("m.####.exr"), "patch": Path("p.####.exr")}
    assert options.encode.start_number == 1 and options.on_damage == "conceal"
    assert (options.range.start, options.range.end) == (1001, 1100)
    conceal = options_from_args(parser.parse_args(["a.####.png", "b.####.png", "--on-damage",
                                                   "conceal"]))
    assert conceal.plate.missing == "conceal"
    for argv, words in ((["--fps", "0"], "--fps"), (["--workers", "2"], "one process")):
        code = main([str(tmp_path / "s.####.png"), str(tmp_path / "o.####.png"), *argv])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE and words in err and err.count("\n") == 1


def test_a_movie_to_a_hash_pattern_and_compare_refusal(tmp_path):
    from gpen_video.media.endpoints import _movie_output, check_output
    from gpen_video.options import RunOptions
    from tests.media_helpers import VideoSpec, make_video

    clip = make_video(tmp_path / "in.mp4", VideoSpec(n=3))
    options = RunOptions(input=clip, output=tmp_path / "frames.####.png")
    assert _movie_output(options) == tmp_path / "frames.%04d.png"
    with VideoSource(clip) as source:
        check_output(options, source)  # a movie's frames as a #### sequence: accepted
    write_sequence(tmp_path, "s.%04d.png", [Picture(np.zeros((16, 16, 3), np.uint8))] * 2)
    seq = ImageSequenceSource(tmp_path / "s.####.png")
    with pytest.raises(UsageError, match="--compare writes a review movie"):
        check_output(RunOptions(input=tmp_path / "s.####.png", output=tmp_path / "o.####.png",
                                compare="split"), seq)


def test_passes_are_exact_with_the_torch_geometry_too(testdata, tmp_path):
    """The layer is computed on the host from the torch path's crops (``to_host``): its matte
    and patch must describe what the torch paste wrote (run on the CPU here)."""
    from gpen_video.options import BlendOptions

    write_sequence(tmp_path, "shot.%04d.png", [Picture(face_frame(testdata, shift=k))
                                                for k in range(3)])
    pipeline.run(run_options(
        testdata, tmp_path / "shot.####.png", tmp_path / "out.####.png", backend="identity",
        blend=BlendOptions(geometry="torch"),
        passes=PassOptions(matte=tmp_path / "m.####.png", patch=tmp_path / "p.####.png")))
    touched = 0
    for n in (1001, 1002, 1003):
        src = read_picture(tmp_path / f"shot.{n}.png").rgb
        out = read_picture(tmp_path / f"out.{n}.png").rgb
        matte = _grey(tmp_path / f"m.{n}.png")
        differs = np.any(src != out, axis=-1)
        touched += int(differs.sum())
        assert np.all(matte[differs] > 0) and np.array_equal(src[matte == 0], out[matte == 0])
        patch = read_picture(tmp_path / f"p.{n}.png")
        over = (patch.rgb / 65535.0 + (1 - patch.alpha[..., None] / 65535.0) * src / 255.0)
        assert np.abs(over * 255.0 - out).max() <= 1.01
    assert touched > 0


def test_a_sequence_written_as_a_movie_keeps_rate_and_start_timecode(testdata, tmp_path):
    from gpen_video.media import VideoSink

    write_exr_sequence(tmp_path, acescg_plate(testdata, n=1), fps=(25, 1))
    exr = ImageSequenceSource(tmp_path / "shot.####.exr")
    assert exr.timecode == "01:00:00:00" and exr.fps == 25
    pictures = [Picture(np.full((32, 48, 3), 40 * k, np.uint8)) for k in range(3)]
    written = write_sequence(tmp_path, "s.%04d.dpx", pictures, first=1001)
    industry = bytearray(b"\xff" * 384)
    struct.pack_into("<f", industry, 1724 - 1664, 24.0)
    struct.pack_into("<I", industry, 1920 - 1664, 0x10203004)
    for path in written:
        add_dpx_industry(path, bytes(industry))
    source = ImageSequenceSource(tmp_path / "s.####.dpx", RangeOptions(start=1002, end=1003))
    out = tmp_path / "s.mov"
    with VideoSink(out, source, EncodeOptions(codec="prores")) as sink:
        for frame in source:
            sink.write(frame)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 24
        assert stream.metadata.get("timecode") == "10:20:30:05"  # advanced to frame 1002
        assert sum(1 for _ in c.decode(stream)) == 2


def test_multi_part_exr_restores_the_rgb_part_and_passes_the_others_through(tmp_path):
    import OpenEXR

    from gpen_video.media.sequence_sink import ImageSequenceSink

    rng = np.random.default_rng(5)
    rgb = (rng.random((3, 24, 32)) * 3 - 0.5).astype(np.float16)
    for number in (1, 2):
        depth = OpenEXR.Part({"compression": OpenEXR.PIZ_COMPRESSION,
                              "type": OpenEXR.scanlineimage, "aov": "depth"},
                             {"Z": np.full((24, 32), float(number), np.float32)}, "depth")
        beauty = OpenEXR.Part({"compression": OpenEXR.ZIP_COMPRESSION,
                               "type": OpenEXR.scanlineimage},
                              {"R": rgb[0], "G": rgb[1], "B": rgb[2]}, "beauty")
        OpenEXR.File([depth, beauty]).write(str(tmp_path / f"mp.{number:04d}.exr"))
    source = ImageSequenceSource(tmp_path / "mp.####.exr", colorspace="ACEScg")
    with ImageSequenceSink(tmp_path / "out.####.exr", source) as sink:
        for frame in source:
            assert frame.part == 1 and len(frame.parts) == 2
            sink.write(frame)
    with OpenEXR.File(str(tmp_path / "out.0002.exr"), separate_channels=True) as f:
        assert [p.name() for p in f.parts] == ["depth", "beauty"]
        assert f.parts[0].header["aov"] == "depth"
        assert np.array_equal(f.parts[0].channels["Z"].pixels, np.full((24, 32), 2.0, np.float32))
        assert all(np.array_equal(f.parts[1].channels[c].pixels, rgb[i])
                   for i, c in enumerate("RGB"))


def test_still_png_to_jpeg_and_16bit_tiff_still_to_tiff(tmp_path):
    from gpen_video.media.sequence_sink import ImageSequenceSink

    image = (np.random.default_rng(2).random((40, 60, 3)) * 255).astype(np.uint8)
    write_picture(tmp_path / "in.png", Picture(image))
    source = ImageSequenceSource(tmp_path / "in.png")
    with ImageSequenceSink(tmp_path / "out.jpg", source) as sink:
        for frame in source:
            sink.write(frame)
    got = read_picture(tmp_path / "out.jpg")
    assert got.codec == "mjpeg" and got.rgb.shape == image.shape
    assert psnr(got.rgb, image) > 25  # JPEG is lossy; the picture is the same one
    deep = deep_picture(image, alpha=False)
    write_picture(tmp_path / "in.tif", deep)
    source = ImageSequenceSource(tmp_path / "in.tif")
    with ImageSequenceSink(tmp_path / "out.tif", source) as sink:
        for frame in source:
            sink.write(frame)
    again = read_picture(tmp_path / "out.tif")
    assert again.pix_fmt == "rgb48le" and np.array_equal(again.rgb, deep.rgb)
