"""The last rough exits (issue 37, defects 6–9 and the container/codec mismatch): each with its
exit code and message. Runs are real ``gpen-video`` command lines (identity restorer, MobileNet
detector, CPU) on clips of a few frames; defect 8 needs a real process stopped by a signal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from gpen_video.cli import main
from tests.farm_helpers import REPO, env, render_args
from tests.media_helpers import AudioSpec, VideoSpec, make_video

TESTDATA = REPO.parent / "shared" / "testdata"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_6_a_single_run_sweeps_a_killed_workers_runs_segment_folder(testdata, tmp_path,
                                                                     capsys):
    """A ``--workers`` run killed outright leaves ``.out.gpen-partial-PID-XXXX/`` (its lock died
    with it); a single-process run to the same output removes it, and keeps a live run's."""
    clip = make_video(tmp_path / "clip.mp4", VideoSpec(n=4))
    out = tmp_path / "out.mkv"
    dead = tmp_path / f".out.gpen-partial-{_dead_pid()}-k1ll3d_x"
    dead.mkdir()
    (dead / "seg-000000-000001.mkv").write_bytes(os.urandom(1 << 20))
    live = tmp_path / f".out.gpen-partial-{os.getpid()}-l1v3_xy"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running --workers run holds it
    try:
        code, _, err = _run(capsys, clip, out, *render_args(testdata))
        assert code == 0, err
        assert not dead.exists() and live.is_dir() and out.is_file()
    finally:
        os.close(fd)
        shutil.rmtree(live)


def test_7_odd_width_4_2_0_is_refused_before_the_models_load_with_the_fix(
        testdata, tmp_path, capsys, monkeypatch):
    clip = make_video(tmp_path / "odd.mkv", VideoSpec(n=3, width=97, height=64, codec="ffv1",
                                                      pix_fmt="yuv420p"))
    import gpen_video.backends as backends

    real = backends.create_restorer

    def loading(*a, **k):  # records that the models were reached
        loading.called = True
        return real(*a, **k)

    loading.called = False
    monkeypatch.setattr(backends, "create_restorer", loading)
    code, _, err = _run(capsys, clip, tmp_path / "o.mp4", "--codec", "h264",
                        *render_args(testdata))
    assert code == 2 and not loading.called
    assert err.strip() == ("gpen-video: error: h264 cannot encode yuv420p (following the "
                           "source) at an odd width 97 (97x64): its chroma is halved there; "
                           "add --pix-fmt yuv444p (full chroma, any size), or write .mkv with "
                           "--codec ffv1")
    code, _, err = _run(capsys, clip, tmp_path / "o.mp4", "--codec", "h264", "--pix-fmt",
                        "yuv444p", *render_args(testdata))
    assert code == 0, err
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].format.name) == \
            (97, "yuv444p")


def test_8_a_stopped_workers_run_ends_with_the_products_line(testdata, tmp_path):
    """SIGTERM to a ``--workers 2`` run: exit 143, and stderr ends with gpen-video's own line —
    no "resource_tracker … leaked semaphore" warning after it."""
    clip = TESTDATA / "videos" / "liveportrait_d18.mp4"
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpen_video", str(clip), str(out), *render_args(testdata),
         "--codec", "ffv1", "--pix-fmt", "bgr0", "--workers", "2", "--progress", "json"],
        cwd=REPO, env={**env(), "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:  # wait until the workers render
            event = json.loads(line)
            if event.get("event") == "progress" and event["frame"] >= 1:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # EOF: every writer of stderr is gone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("gpen-video: "), err
    assert "resource_tracker" not in err and "leaked" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_9a_a_fifo_input_is_named_as_one(tmp_path, capsys):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    code, _, err = _run(capsys, fifo, tmp_path / "o.mp4")
    assert code == 2
    assert f"input {fifo} is a named pipe (FIFO): gpen-video reads its input more than once" \
        in err and "save the stream to a file first" in err and "empty" not in err


def test_9b_a_cover_art_only_file_says_so(tmp_path, capsys):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as c:
        audio = c.add_stream("aac", rate=48000)
        cover = c.add_stream("mjpeg", rate=1)
        cover.width = cover.height = 64
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts = 0
        for packet in [*cover.encode(picture), *cover.encode(None)]:
            c.mux(packet)
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        sound.sample_rate, sound.pts = 48000, 0
        for packet in [*audio.encode(sound), *audio.encode(None)]:
            c.mux(packet)
    code, _, err = _run(capsys, path, tmp_path / "o.mp4")
    assert code == 2
    assert err.strip() == (f"gpen-video: error: input {path} has no video stream (only audio "
                           "and a cover picture): gpen-video needs a video")


@pytest.mark.parametrize("source", ["png", "ffv1"])
def test_9c_a_png_or_ffv1_source_into_mp4_is_written_as_h264_and_said(testdata, tmp_path,
                                                                       capsys, source):
    """A PNG clip named .mp4, and an FFV1 clip with --compare, into .mp4: H.264 (what MP4
    players play), said in a warning and in the closing summary."""
    spec = VideoSpec(n=3, codec="png", pix_fmt="rgb24") if source == "png" else \
        VideoSpec(n=3, codec="ffv1", pix_fmt="yuv420p")
    src = make_video(tmp_path / ("clip.mp4" if source == "png" else "clip.mkv"), spec)
    extra = ["--compare", "side-by-side"] if source == "ffv1" else []
    out = tmp_path / "o.mp4"
    code, stdout, err = _run(capsys, src, out, *render_args(testdata), "--progress", "plain",
                             *extra)
    assert code == 0, err
    assert f".mp4 cannot hold {source} (the source's codec) for players: writing H.264 " \
        "instead; use " in err
    assert f"video: {source} → h264 (.mp4 cannot hold {source})" in stdout + err
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_9d_an_output_folder_made_read_only_mid_run_says_what_happened(testdata, tmp_path,
                                                                       capsys, monkeypatch):
    """The folder turns read-only while the run writes (here: just before the finished file is
    renamed into place): exit 2 and a message that says what happened and what to do."""
    if os.geteuid() == 0 and shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a folder read-only")
    clip = make_video(tmp_path / "clip.mp4", VideoSpec(n=3, audio=[AudioSpec(seconds=0.2)]))
    folder = tmp_path / "out"
    folder.mkdir()
    from gpen_video.media import paths

    real = paths.finalize_file

    def lock_then_finalize(temp, output, overwrite):
        _read_only(folder, True)
        return real(temp, output, overwrite)

    monkeypatch.setattr(paths, "finalize_file", lock_then_finalize)
    try:
        code, _, err = _run(capsys, clip, folder / "o.mp4", *render_args(testdata))
    finally:
        _read_only(folder, False)
    assert code == 2
    assert f"permission denied in {folder} (it is read-only, or its permissions changed while " \
        "gpen-video ran); make it writable or choose another output folder" in err
    assert not (folder / "o.mp4").exists()


def _read_only(folder: Path, on: bool) -> None:
    if os.geteuid() == 0:  # root ignores mode bits; an immutable folder stops root too
        subprocess.run(["chattr", "+i" if on else "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555 if on else 0o755)


def test_workers_999_runs_with_the_bound_and_says_why(testdata, tmp_path, capsys):
    """Defect 4: ``--workers 999`` on 24 frames: the bound (cores, memory, frames) is used and
    named in one warning; the job succeeds."""
    clip = make_video(tmp_path / "clip.mp4", VideoSpec(n=24, rate=Fraction(24)))
    out = tmp_path / "o.mkv"
    code, _, err = _run(capsys, clip, out, *render_args(testdata), "--codec", "ffv1",
                        "--workers", "999", "--progress", "json")
    assert code == 0, err
    (line,) = [ln for ln in err.splitlines() if "--workers 999" in ln]
    match = re.search(r"--workers 999: using (\d+) process\(es\): ", line)
    assert match and 1 <= int(match.group(1)) <= min(2, os.cpu_count() or 1)  # 24 frames: ≥ 12
    assert "24 frames make 2 chunk(s) of at least 12" in line or "core" in line


def test_workers_bound_is_the_smallest_of_cores_memory_and_frames():
    from gpen_video.farm.bound import MIN_CHUNK_FRAMES, worker_bound

    gb = 1e9
    assert worker_bound(2, 0, 10_000, int(100 * gb), 3.5 * gb).count == 2  # cores
    b = worker_bound(64, 0, 10_000, int(10 * gb), 3.5 * gb)  # 0.8 × 10 / 3.5 = 2.29
    assert (b.count, b.by_memory) == (2, 2) and "2 fit in 80% of the 10.0 GB" in b.reason
    b = worker_bound(64, 0, 3 * MIN_CHUNK_FRAMES + 5, int(100 * gb), 3.5 * gb)
    assert b.count == 3 and f"make 3 chunk(s) of at least {MIN_CHUNK_FRAMES}" in b.reason
    assert worker_bound(64, 2, 10_000, int(100 * gb), 3.5 * gb).count == 8  # 4 per GPU
    assert worker_bound(64, 0, 5, int(100 * gb), 3.5 * gb).count == 1  # never below one
    assert worker_bound(4, 0, 10_000, None).count == 4  # memory unknown: not a limit
    assert b.explain(999).startswith("--workers 999: using 3 process(es): ")
