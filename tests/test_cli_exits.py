"""How a ``gpen-video`` process ends: exit codes, one-line errors, nothing left at the output.

Every test runs real processes (``python -m gpen_video``, or the same entry point after an
instrument is installed, see ``tests/exit_helpers.py``). GPEN is a random-weight network of the
real architecture at reduced size (plumbing only). No assertion is on wall time except loose
bounds that only catch a hang; waits are for readiness signals (a progress line, a log line, the
partial file appearing), never fixed sleeps.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.exit_helpers import (FULL_DISK_SINK, SLOW_ONNX_DETECTOR, damaged_input, env,
                                gpen_video, run_args, with_instrument)
from tests.pipeline_helpers import save_small_gpen

CLIP = "liveportrait_d11.mp4"
HANG = 60.0  # seconds: only a process that hangs takes this long


@pytest.fixture(scope="module")
def small_gpen(tmp_path_factory) -> Path:
    return save_small_gpen(tmp_path_factory.mktemp("gpen") / "gpen128-random.pth")


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "terminate called" not in err
    return lines[0]


def _wait_for(predicate, proc: subprocess.Popen, what: str) -> None:
    """Poll until ``predicate()`` holds (a readiness signal); fail if the process ends first."""
    deadline = time.monotonic() + 10 * HANG
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (code {proc.returncode}) before {what}: "
                        + (proc.stderr.read() if proc.stderr else ""))
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {10 * HANG:.0f} s")
        time.sleep(0.02)


def _partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".gpen-partial-" in p.name)


# ------------------------------------------------------------------ damaged input: exit 2


@pytest.mark.parametrize("runs", [1, pytest.param(10, marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", ["truncated", "frame", "length"])
def test_damaged_input_exits_2_with_one_line_and_nothing_left(testdata, tmp_path, small_gpen,
                                                              kind, runs):
    bad = damaged_input(tmp_path, kind)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    extra = ["--on-damage", "fail", "--progress", "none"]
    for _ in range(runs):
        proc = gpen_video(run_args(testdata, bad, out_dir / "restored.mp4", small_gpen, *extra))
        assert proc.returncode == 2, proc.stderr
        line = _one_error_line(proc.stderr)
        assert "truncated" in line or "damaged" in line, line
        assert list(out_dir.iterdir()) == []


def test_thread_stuck_in_onnxruntime_still_exits_2(testdata, tmp_path, small_gpen):
    """The detector thread is inside a seconds-long ONNX Runtime call when the input turns out
    damaged: the pipeline cannot join it, and the process must still exit 2 (not abort with
    134 at interpreter teardown) with nothing at the output."""
    bad = damaged_input(tmp_path, "frame", packet=10)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = with_instrument(SLOW_ONNX_DETECTOR, run_args(
        testdata, bad, out_dir / "restored.mp4", small_gpen, "--on-damage", "fail",
        "--progress", "none"))
    assert proc.returncode == 2, proc.stderr
    assert "damaged" in _one_error_line(proc.stderr)
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------------------------ signals


def _start(args: list[str], tmp_path: Path, instrument: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gpen_video", *args] if instrument is None else \
        [sys.executable, "-c", f"{instrument}\nfrom gpen_video.cli import console\nconsole()\n",
         *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(), cwd=tmp_path)


def _stop(proc: subprocess.Popen, signum: int) -> float:
    """Send ``signum``; the seconds until the process was gone."""
    sent = time.perf_counter()
    proc.send_signal(signum)
    try:
        proc.wait(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.perf_counter() - sent


def test_sigterm_mid_run_exits_143_and_leaves_nothing(testdata, tmp_path, small_gpen):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(run_args(testdata, testdata / "videos" / CLIP, out_dir / "restored.mp4",
                           small_gpen, "--progress", "plain"), tmp_path)
    for line in proc.stdout:  # readiness: frames are being written
        if line.startswith("Progress: ") and int(line.split()[1].rstrip("%")) >= 3:
            break
    else:
        pytest.fail("no progress before the end: " + proc.stderr.read())
    assert _partials(out_dir)  # the run is writing its partial file
    elapsed = _stop(proc, signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.returncode == 143, err
    assert "SIGTERM" in _one_error_line(err)
    assert list(out_dir.iterdir()) == []  # no output, no partial file
    assert elapsed < HANG


def test_sighup_during_model_loading_exits_129_and_leaves_nothing(testdata, tmp_path,
                                                                  small_gpen):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(run_args(testdata, testdata / "videos" / CLIP, out_dir / "restored.mp4",
                           small_gpen, "--progress", "none", "-v"), tmp_path)
    for line in proc.stderr:  # readiness: checks done, models loading
        if "loading the models" in line:
            break
    else:
        pytest.fail("the run never reached model loading")
    _stop(proc, signal.SIGHUP)
    err = proc.stderr.read()
    assert proc.returncode == 129, err
    assert "SIGHUP" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_sigterm_with_a_thread_stuck_in_onnxruntime_exits_143(testdata, tmp_path, small_gpen):
    """A thread that cannot be joined does not keep the process (watchdog / os._exit path)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(run_args(testdata, testdata / "videos" / CLIP, out_dir / "restored.mp4",
                           small_gpen, "--progress", "none"), tmp_path, SLOW_ONNX_DETECTOR)
    _wait_for(lambda: _partials(out_dir), proc, "a partial file")  # setup done, detecting
    _stop(proc, signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.returncode == 143, err
    assert "terminate called" not in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


SIGNAL_WHILE_OPENING_THE_OUTPUT = """
import os, signal
import gpen_video.media.sink as sink
real = sink.tag_container
def tag_then_signal(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # half-way through opening the output container
    return real(*args, **kwargs)
sink.tag_container = tag_then_signal
"""


def test_sigterm_while_the_output_is_being_opened_exits_143(testdata, tmp_path, small_gpen):
    """A signal half-way through opening the output (the partial file already exists): the
    output is opened whole, then stopped and removed — exit 143, nothing left."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = with_instrument(SIGNAL_WHILE_OPENING_THE_OUTPUT, run_args(
        testdata, testdata / "videos" / CLIP, out_dir / "restored.mp4", small_gpen,
        "--progress", "none"))
    assert proc.returncode == 143, proc.stderr
    assert "SIGTERM" in _one_error_line(proc.stderr)
    assert list(out_dir.iterdir()) == []


NATIVE_CRASH = """
import os, threading, time
import gpen_video.pipeline as pipeline
def crash(*_args, **_kwargs):
    threading.Thread(target=time.sleep, args=(60,), name="gpen-restore", daemon=True).start()
    os.abort()  # as glibc does on a corrupted heap ("munmap_chunk(): invalid pointer")
pipeline.run = crash
"""


def test_a_native_crash_prints_every_threads_stack(testdata, tmp_path, small_gpen):
    """A crash inside a native library cannot exit cleanly; it must at least say where each
    thread was (faulthandler), not end on a lone allocator line."""
    proc = with_instrument(NATIVE_CRASH, run_args(
        testdata, testdata / "videos" / CLIP, tmp_path / "restored.mp4", small_gpen,
        "--progress", "none"))
    assert proc.returncode == -signal.SIGABRT, proc.stderr
    assert "Fatal Python error: Aborted" in proc.stderr
    assert "most recent call first" in proc.stderr and "in crash" in proc.stderr
    assert "Current thread 0x" in proc.stderr and "\nThread 0x" in proc.stderr  # both threads


# ------------------------------------------------------------------ stale partial files


def test_partial_of_a_killed_run_is_removed_and_a_live_runs_is_kept(testdata, tmp_path,
                                                                    small_gpen):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "restored.mp4"
    clip = testdata / "videos" / CLIP
    args = run_args(testdata, clip, target, small_gpen, "--progress", "none")
    killed = _start(args, tmp_path, SLOW_ONNX_DETECTOR)
    _wait_for(lambda: _partials(out_dir), killed, "the first run's partial file")
    killed.kill()
    killed.wait(timeout=HANG)
    dead_partial, = _partials(out_dir)
    other = out_dir / f".other.gpen-partial-{killed.pid}-0123abcd.mp4"  # another target's
    other.write_bytes(b"x")

    # the next run to the target removes the dead run's partial (and writes its own)
    live = _start(args, tmp_path, SLOW_ONNX_DETECTOR)
    try:
        _wait_for(lambda: not dead_partial.exists() and len(_partials(out_dir)) == 2, live,
                  "the live run's partial file")
        live_partial, = set(_partials(out_dir)) - {other}
        assert str(live.pid) in live_partial.name
        # a concurrent run to the same target leaves the live run's partial alone
        done = gpen_video(run_args(testdata, clip, target, small_gpen, "--frames", "0-1",
                                   "--progress", "none", "--backend", "identity"))
        assert done.returncode == 0, done.stderr
        assert target.is_file() and live.poll() is None
        assert live_partial.exists() and other.exists()
    finally:
        _stop(live, signal.SIGTERM)
    assert live.returncode == 143
    assert not live_partial.exists()  # removed by its own run on SIGTERM


# ------------------------------------------------------------------ full disk: exit 75


def test_no_space_left_on_write_exits_75(testdata, tmp_path, small_gpen):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = with_instrument(FULL_DISK_SINK, run_args(
        testdata, testdata / "videos" / CLIP, out_dir / "restored.mp4", small_gpen,
        "--frames", "0-3", "--progress", "none"))
    assert proc.returncode == 75, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "disk is full" in line and str(out_dir) in line and "free" in line
    assert list(out_dir.iterdir()) == []


def test_file_size_limit_exits_75(testdata, tmp_path, small_gpen):
    """A real EFBIG from the encoder's writes (RLIMIT_FSIZE; Python ignores SIGXFSZ)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = subprocess.run(
        [sys.executable, "-m", "gpen_video", *run_args(
            testdata, testdata / "videos" / CLIP, out_dir / "restored.mov", small_gpen,
            "--frames", "0-9", "--codec", "png", "--progress", "none")],
        env=env(), capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 75, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "file-size limit" in line and str(out_dir) in line
    assert list(out_dir.iterdir()) == []
