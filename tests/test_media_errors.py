"""Bad inputs and outputs (issue 3, "Done when" 6): one clear line, exit code 2, nothing left
at the output path; a damaged packet in the middle loses no frame after it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from gpen_video.errors import EXIT_USAGE, InputError, OutputError
from gpen_video.media import VideoSink, VideoSource, copy_video
from gpen_video.media.paths import TEMP_TAG
from gpen_video.options import EncodeOptions
from tests.media_helpers import AudioSpec, VideoSpec, damaged_clip, frame_times, make_video


def assert_refused(exc: pytest.ExceptionInfo, kind: type, out: Path, *words: str) -> None:
    """One line, the documented exit code, the words that say what to do, no output left."""
    message = str(exc.value)
    assert isinstance(exc.value, kind), repr(exc.value)
    assert "\n" not in message and message.strip() == message and len(message) < 300
    assert exc.value.exit_code == EXIT_USAGE == 2
    for word in words:
        assert word in message, message
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if TEMP_TAG in p.name]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "in.mp4", VideoSpec(n=12, audio=[AudioSpec(seconds=0.5)]))


# ---------------------------------------------------------------------------- inputs


def test_missing_input(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(tmp_path / "nope.mp4", out)
    assert_refused(exc, InputError, out, "does not exist")


def test_empty_input(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(tmp_path / "empty.mp4", out)
    assert_refused(exc, InputError, out, "empty")


def test_text_file_input(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are notes, not a video\n" * 20)
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(tmp_path / "notes.mp4", out)
    assert_refused(exc, InputError, out, "text file")


def test_audio_only_input(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=48000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = 48000, i * 1024
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(path, out)
    assert_refused(exc, InputError, out, "no video stream", "audio")


def test_truncated_mp4_without_index(tmp_path, clip):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])  # the index ('moov') is at the end: gone
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(cut, out)
    assert_refused(exc, InputError, out, "truncated")


def test_truncated_faststart_mp4(tmp_path):
    """Index first, media data cut short: found when the reading runs out, output removed."""
    src = tmp_path / "fast.mp4"
    with av.open(str(src), "w", options={"movflags": "faststart"}) as c:
        stream = c.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(24):
            img = np.random.default_rng(i).integers(0, 256, (64, 96, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    data = src.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the fixture is really faststart
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(cut, out)
    assert_refused(exc, InputError, out, "truncated", "24")


def test_damaged_packet_is_concealed_and_later_frames_kept(tmp_path, caplog):
    src, bad = damaged_clip(tmp_path)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="gpen_video.media"):
        result = copy_video(bad, out)
    assert result.frames_written == 36
    assert result.concealed_frames  # the damage was seen and repaired
    assert frame_times(out) == frame_times(src)  # every frame after it is there, in place
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("\n" not in w for w in warnings)
    assert any("damaged" in w or "could not be decoded" in w for w in warnings)


def test_damaged_packet_strict_mode_refuses(tmp_path):
    _, bad = damaged_clip(tmp_path)
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError) as exc:
        copy_video(bad, out, errors="strict")
    assert_refused(exc, InputError, out, "damaged")


# ---------------------------------------------------------------------------- outputs


def test_output_into_missing_folder(tmp_path, clip):
    out = tmp_path / "no" / "such" / "out.mp4"
    with pytest.raises(OutputError) as exc:
        copy_video(clip, out)
    message = str(exc.value)
    assert "does not exist" in message and "\n" not in message and exc.value.exit_code == 2
    assert not out.parent.exists()


def test_output_into_read_only_folder(tmp_path, clip):
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:  # root ignores mode bits; an immutable folder stops root too
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root and cannot make a folder immutable (chattr)")
    else:
        folder.chmod(0o555)
    try:
        out = folder / "out.mp4"
        with pytest.raises(OutputError) as exc:
            copy_video(clip, out)
        assert_refused(exc, OutputError, out, "not writable")
        assert list(folder.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_output_is_the_input(tmp_path, clip):
    before = clip.read_bytes()
    with pytest.raises(OutputError) as exc:
        copy_video(clip, clip, overwrite=True)
    assert "is the input" in str(exc.value) and exc.value.exit_code == 2
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    with pytest.raises(OutputError):
        copy_video(clip, link, overwrite=True)
    with pytest.raises(OutputError):
        copy_video(link, tmp_path / "." / "in.mp4", overwrite=True)
    assert clip.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if TEMP_TAG in p.name]


def test_existing_output_needs_overwrite(tmp_path, clip):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError) as exc:
        copy_video(clip, out)
    assert "use -y" in str(exc.value) and exc.value.exit_code == 2
    assert out.read_bytes() == b"keep me"
    copy_video(clip, out, overwrite=True)
    assert len(frame_times(out)) == 12


def test_failure_midway_leaves_nothing(tmp_path, clip):
    out = tmp_path / "out.mp4"
    with VideoSource(clip) as source:
        with pytest.raises(RuntimeError):
            with VideoSink(out, source) as sink:
                for i, frame in enumerate(source):
                    sink.write(frame)
                    if i == 5:
                        assert any(TEMP_TAG in p.name for p in tmp_path.iterdir())
                        raise RuntimeError("processing failed")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_TAG in p.name]


def test_wrong_image_is_refused_before_encoding(tmp_path, clip):
    out = tmp_path / "out.mp4"
    with VideoSource(clip) as source, VideoSink(out, source) as sink:
        frame = next(iter(source))
        with pytest.raises(ValueError, match="upright RGB"):
            sink.write(frame, frame.image.astype(np.uint16))
        with pytest.raises(ValueError, match="upright RGB"):
            sink.write(frame, frame.image[:, :-2])
        sink.abort()
    assert not out.exists()


def test_image_sequence_refuses_existing_files(tmp_path, clip):
    (tmp_path / "f_0000.png").write_bytes(b"old")
    with pytest.raises(OutputError) as exc:
        copy_video(clip, tmp_path / "f_%04d.png")
    assert "use -y" in str(exc.value)
    assert (tmp_path / "f_0000.png").read_bytes() == b"old"
    assert not (tmp_path / "f_0001.png").exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_TAG in p.name]


def test_unknown_output_type_is_a_usage_error(tmp_path, clip):
    from gpen_video.errors import UsageError

    with pytest.raises(UsageError) as exc:
        copy_video(clip, tmp_path / "out.xyz")
    assert ".mp4" in str(exc.value) and exc.value.exit_code == 2
    with pytest.raises(UsageError):
        copy_video(clip, tmp_path / "out.mp4", EncodeOptions(codec="prores"))
    assert not list(tmp_path.glob("out.*"))


def test_errors_keep_their_exit_code_through_the_cli_mapping(tmp_path, capsys, monkeypatch):
    """The CLI prints exactly the one-line message and exits 2 for these errors."""
    from gpen_video import cli

    def fake_execute(args, env):
        copy_video(tmp_path / "missing.mp4", tmp_path / "out.mp4")

    import gpen_video.commands.run as run_command

    monkeypatch.setattr(run_command, "execute", fake_execute)
    code = cli.main([str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "does not exist" in err


def test_frame_rate_and_fractions_are_exact(tmp_path):
    src = make_video(tmp_path / "ntsc.mp4", VideoSpec(n=6, rate=Fraction(30000, 1001)))
    with VideoSource(src) as source:
        assert source.fps == Fraction(30000, 1001)
        assert isinstance(source.time_base, Fraction)


def test_output_gets_ordinary_permissions(tmp_path, clip):
    """The temporary file is created like any new file (0o666 minus the umask), so the renamed
    output is not left private to the renderer's user."""
    umask = os.umask(0)
    os.umask(umask)
    out = tmp_path / "out.mp4"
    copy_video(clip, out)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
