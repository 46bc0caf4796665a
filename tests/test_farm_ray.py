"""``gpen-video farm`` on a local Ray cluster (issue 8, "Done when" 2).

One Ray session (``num_cpus=2``) serves the module. Workers are real Ray actors in their own
processes; a worker is killed for real by a test's chunk hook (``run_farm(chunk_hook=...)``,
``os._exit`` halfway through a chunk, in the worker's process), and a farm driver is killed for real (SIGKILL) to test
the resume.

Ray workers run torch with one thread (Ray sets ``OMP_NUM_THREADS`` to a worker's CPUs), and the
detector's float results depend on the thread count (measured: ±1 in 0.1 % of face pixels), so
the single-process reference is rendered with one torch thread too; then the farm's output must
be identical bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (the 'farm' extra: "
                                         "pip install 'gpen-video[farm]')")

from gpen_video.cli import main  # noqa: E402
from tests.farm_helpers import (OVERLAP, PERIOD, REPO, CorruptSegment,  # noqa: E402
                                FailChunk, audio_packets, corrupt_packet, env, face_clip,
                                inject, lossless, render_args)
from tests.pipeline_helpers import read_frames  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: 2 CPUs, no dashboard, its session files (logs,
    sockets) in a short-named temporary folder removed afterwards (Ray's default, /tmp/ray,
    keeps every session)."""
    import shutil
    import tempfile

    from gpen_video.farm.ray_runner import local_workers_at_normal_priority

    started = not ray.is_initialized()
    folder = None
    if started:
        local_workers_at_normal_priority()  # as the product starts a local Ray
        folder = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths have a length limit
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=folder)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def job(testdata, tmp_path_factory):
    """The clip, the farm's options, and a single-process reference (one torch thread)."""
    import torch

    root = tmp_path_factory.mktemp("farm_ray")
    clip = face_clip(root / "clip.mov", testdata)
    reference = root / "reference.mkv"
    args = [*render_args(testdata), *lossless(reference)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([str(clip), str(reference), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    farm_args = [*args, "--chunk", str(PERIOD), "--overlap", str(OVERLAP),
                 "--segments", "lossless", "--keep-segments", "--progress", "json"]
    return {"clip": clip, "reference": reference, "args": farm_args, "root": root}


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _same_as_reference(out: Path, job: dict) -> None:
    ref, got = read_frames(job["reference"]), read_frames(out)
    assert len(got) == len(ref) == 72
    for a, b in zip(ref, got):
        assert a.pts == b.pts and np.array_equal(a.image, b.image), f"frame {a.index} differs"
    assert audio_packets(out) == audio_packets(job["reference"])


def test_farm_renders_like_one_process_and_retries_a_killed_worker(cluster, job, tmp_path,
                                                                   capsys, monkeypatch):
    """3 chunks on 2 CPU workers; chunk 1's worker dies halfway (os._exit) on its first attempt:
    the chunk is rendered again by a new worker and the output is still exact."""
    inject(monkeypatch, FailChunk("exit", 1))
    out = tmp_path / "farm.mkv"
    assert main(["farm", str(job["clip"]), str(out), *job["args"]]) == 0
    events = _events(capsys.readouterr().out)
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["rendered"] == [0, 1, 2] and summary["retried"] == [1]
    assert summary["workers"] == 2 and summary["device"] == "cpu"
    retry = [e for e in events if e["event"] == "chunk" and e["status"] == "retry"]
    assert len(retry) == 1 and retry[0]["chunk"] == 1 and "ActorDiedError" in retry[0]["error"]
    done = {e["chunk"]: e["attempt"] for e in events
            if e["event"] == "chunk" and e["status"] == "rendered"}
    assert done == {0: 1, 1: 2, 2: 1}
    progress = [e["percent"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 100.0
    _same_as_reference(out, job)
    segdir = Path(summary["segment_dir"])
    assert sorted(p.name for p in segdir.iterdir()) == [
        "seg-000000-000023.mkv", "seg-000000-000023.mkv.json", "seg-000024-000047.mkv",
        "seg-000024-000047.mkv.json", "seg-000048-000071.mkv", "seg-000048-000071.mkv.json"]


def test_rerun_after_a_killed_farm_reuses_finished_segments(cluster, job, tmp_path, capsys):
    """The farm driver is killed (SIGKILL) once a segment is finished; the same command again
    reuses the finished segments untouched (same inode and mtime) and renders only the rest."""
    out = tmp_path / "resumed.mkv"
    cmd = [sys.executable, "-m", "gpen_video", "farm", str(job["clip"]), str(out), *job["args"],
           "--ray-address", cluster]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    finished: dict[str, tuple[int, int]] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            segments = list(tmp_path.glob(f".{out.name}.farm-*/seg-*.mkv"))
            if segments:
                break
            time.sleep(0.2)
        assert segments, "the farm wrote no segment in time"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    for seg in tmp_path.glob(f".{out.name}.farm-*/seg-*.mkv"):
        st = seg.stat()
        finished[seg.name] = (st.st_ino, st.st_mtime_ns)
    assert 1 <= len(finished) < 3

    assert main(["farm", str(job["clip"]), str(out), *job["args"]]) == 0
    summary = next(e for e in _events(capsys.readouterr().out) if e["event"] == "summary")
    reused = {f"seg-{24 * i:06d}-{24 * i + 23:06d}.mkv" for i in summary["reused"]}
    assert reused == set(finished)
    assert sorted(summary["reused"] + summary["rendered"]) == [0, 1, 2]
    for name, stamp in finished.items():
        st = (Path(summary["segment_dir"]) / name).stat()
        assert (st.st_ino, st.st_mtime_ns) == stamp, f"{name} was rewritten"
    _same_as_reference(out, job)


def test_a_chunk_that_keeps_failing_exits_75_and_keeps_nothing_at_the_output(
        cluster, job, tmp_path, capsys, monkeypatch):
    """Retries are bounded: a chunk failing transiently on every attempt ends the job with exit
    75 (retryable), a one-line message, and no output file."""
    inject(monkeypatch, FailChunk("error", 0, attempts=None))
    out = tmp_path / "never.mkv"
    code = main(["farm", str(job["clip"]), str(out), *job["args"], "--frames", "0-23",
                 "--retries", "1"])
    captured = capsys.readouterr()
    assert code == 75
    assert captured.err.strip().splitlines()[-1].startswith("gpen-video: error: chunk 0 "
                                                              "(frames 0-23) failed 2 times")
    statuses = [e["status"] for e in _events(captured.out) if e["event"] == "chunk"]
    assert statuses == ["retry", "failed"]
    assert not out.exists()


def test_a_chunk_whose_segment_fails_its_check_is_rendered_again(cluster, job, tmp_path, capsys,
                                                                 monkeypatch):
    """Chunk 1's segment is damaged right after it is written (first attempt only, in the
    worker): the stitch's check refuses it, naming segment and frame, the chunk is rendered
    once more and the output is exact. Rerun on the kept segments with one of them damaged on
    disk: that chunk alone is rendered again, the others are reused."""
    inject(monkeypatch, CorruptSegment(chunk=1, frame=3))
    out = tmp_path / "checked.mkv"
    assert main(["farm", str(job["clip"]), str(out), *job["args"]]) == 0
    events = _events(capsys.readouterr().out)
    retry = [e for e in events if e["event"] == "chunk" and e["status"] == "retry"]
    assert len(retry) == 1 and retry[0]["chunk"] == 1
    assert "seg-000024-000047.mkv is damaged: frame 27 does not match" in retry[0]["error"]
    done = {e["chunk"]: e["attempt"] for e in events
            if e["event"] == "chunk" and e["status"] == "rendered"}
    assert done == {0: 1, 1: 2, 2: 1}
    _same_as_reference(out, job)
    summary = next(e for e in events if e["event"] == "summary")
    corrupt_packet(Path(summary["segment_dir"]) / "seg-000048-000071.mkv", 5)
    monkeypatch.undo()
    assert main(["farm", str(job["clip"]), str(out), *job["args"], "-y"]) == 0
    again = next(e for e in _events(capsys.readouterr().out) if e["event"] == "summary")
    assert again["reused"] == [0, 1] and again["rendered"] == [2]
    _same_as_reference(out, job)


def test_local_ray_workers_run_at_normal_priority(cluster):
    """The workers of a Ray instance the product starts are the render: niceness 0, like a
    single run (Ray's default 15 starves them on a busy machine)."""
    @ray.remote
    def niceness() -> int:
        import os

        return os.nice(0)

    assert ray.get(niceness.remote()) == 0
