"""``gpen-video IN OUT --workers N`` (gpen_video.farm.local) and the chunk warm-up it relies on
(gpen_video.farm.warmup, the source's ``tail``, the pipeline's ``prime``, the smoother's
reference-free noise priors).

The consistency test renders a real clip (LivePortrait d18, 480×480, 216 frames with AAC audio:
one face on screen throughout, so its track crosses the chunk border) with random-weight GPEN-256 — whose output changes a lot with
any change of alignment, so it magnifies what chunking changes — once in this process as
``--workers 1`` does, once with ``--workers 2`` in a subprocess, both with one torch thread per
process (``torch.set_num_threads(1)`` here; ``OMP_NUM_THREADS=1`` for the subprocess, which its
workers inherit).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from gpen_video.errors import UsageError
from gpen_video.farm.local import auto_workers, parse_workers, worker_environment
from gpen_video.farm.plan import plan_chunks
from gpen_video.farm.warmup import ChunkMargins, chunk_margins, chunk_ranges
from gpen_video.faces.smooth import SmoothTuning, TrackSmoother
from gpen_video.media import VideoSource
from gpen_video.options import RangeOptions, RunOptions
from tests.farm_helpers import REPO, env
from tests.media_helpers import VideoSpec, make_video, stream_packets

# -- planning ----------------------------------------------------------------------------------


def test_auto_rule_one_worker_per_four_cores_and_one_to_four_per_gpu() -> None:
    assert auto_workers(2, 0)[0] == 1
    assert auto_workers(16, 0)[0] == 4
    assert auto_workers(16, 1)[0] == 4
    assert auto_workers(2, 1)[0] == 1
    assert auto_workers(64, 2)[0] == 8  # capped at 4 per GPU
    assert auto_workers(8, 4)[0] == 4  # at least one per GPU
    assert auto_workers(16, 2, device="cpu")[0] == 4  # GPUs not used


def test_workers_option_values() -> None:
    assert parse_workers("auto") is None
    assert parse_workers("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(UsageError):
            parse_workers(bad)


def test_each_worker_gets_its_threads_and_one_gpu_of_several() -> None:
    assert worker_environment(0, 4, [], "auto") == {"OMP_NUM_THREADS": "4",
                                                    "MKL_NUM_THREADS": "4"}
    assert worker_environment(3, 2, ["0", "1"], "auto")["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in worker_environment(1, 2, ["0"], "auto")  # shared GPU
    assert "CUDA_VISIBLE_DEVICES" not in worker_environment(1, 2, ["0", "1"], "cuda:1")


def test_margins_cover_noise_window_confirmation_temporal_memory_and_lookahead() -> None:
    run = RunOptions(input=Path("-"), output=Path("-"))
    m = chunk_margins(run, 30.0)
    assert m.lead >= SmoothTuning().noise_window + run.track.confirm_hits
    assert m.prime == math.ceil(math.log(1e-3) / math.log(0.6))  # the flow filter's w_max
    assert 1 <= m.prime < m.lead
    assert m.tail >= math.ceil(run.smooth.lag_seconds * 30)  # the RTS look-ahead
    assert m.tail >= run.track.max_misses + 1 + run.blend.ramp_frames  # gap/ramp decisions
    every3 = chunk_margins(RunOptions(input=Path("-"), output=Path("-"),
                                      detect=run.detect.__class__(mode="full", every=3)), 30.0)
    assert every3.lead >= 3 * (SmoothTuning().noise_window + run.track.confirm_hits)
    assert every3.step == 12  # detector batch 4 and detect-every 3 both start in phase
    # tracked detection measures every face on every frame whatever --detect-every says (its
    # scan interval); the scan cycles follow frame numbers wherever the chunk starts
    scans3 = chunk_margins(RunOptions(input=Path("-"), output=Path("-"),
                                      detect=run.detect.__class__(every=3)), 30.0)
    assert (scans3.lead, scans3.step) == (m.lead, 4)
    off = RunOptions(input=Path("-"), output=Path("-"),
                     temporal=run.temporal.__class__(mode="off"))
    assert chunk_margins(off, 30.0).prime == 0


def test_chunk_ranges_keep_the_jobs_own_start_and_end() -> None:
    margins = ChunkMargins(lead=50, prime=14, tail=15, step=4)
    chunks = plan_chunks(10, 309, 100)
    job = RangeOptions(start=10, end=309, overlap=3)
    first, middle, last = chunk_ranges(chunks, margins, job)
    assert (first.start, first.end, first.overlap, first.prime) == (10, 109, 3, 0)
    assert (first.end + first.tail + 1) % 4 == 0 and first.tail >= 15
    assert (middle.start - middle.overlap) % 4 == 0 and middle.overlap >= 50
    assert middle.prime == 14
    assert (last.start, last.end, last.tail) == (210, 309, 0)


def test_overlap_auto_gives_a_hand_rendered_chunk_the_margins(testdata) -> None:
    from gpen_video.farm.warmup import auto_range

    run = RunOptions(input=CLIP, output=Path("-"), range=RangeOptions(start=108, end=150))
    margins = chunk_margins(run, 30.0)
    assert auto_range(run) == margins.range(108, 150)
    whole_tail = auto_range(RunOptions(input=CLIP, output=Path("-"),
                                       range=RangeOptions(start=108)))
    assert (whole_tail.end, whole_tail.tail, whole_tail.prime) == (None, 0, margins.prime)


# -- the pieces a chunk relies on ---------------------------------------------------------------


def test_source_decodes_a_tail_after_the_range_not_in_it(tmp_path: Path) -> None:
    images = [np.full((32, 48, 3), 8 * i, np.uint8) for i in range(20)]
    clip = make_video(tmp_path / "c.mkv", VideoSpec(images=images, codec="ffv1",
                                                    pix_fmt="bgr0", rate=Fraction(10)))
    with VideoSource(clip, RangeOptions(start=5, end=9, overlap=2, tail=4)) as src:
        frames = [(f.index, f.in_range) for f in src]
        assert src.output_frame_count == 5
    assert frames == [(i, 5 <= i <= 9) for i in range(3, 14)]
    with VideoSource(clip, RangeOptions(start=15, end=19, tail=4)) as src:
        assert [f.index for f in src] == list(range(15, 20))  # clamped at the clip's end


def test_pipeline_restores_primed_frames_but_writes_only_the_range() -> None:
    from gpen_video.media.source import ResolvedRange
    from gpen_video.pipeline.stages import restored_frames

    rng = ResolvedRange(first=10, start=20, end=29, clamped=False, pts=tuple(range(40)),
                        durations=(1,) * 40, time_base=Fraction(1, 10), last=35)

    class F:
        def __init__(self, index: int) -> None:
            self.index, self.in_range = index, 20 <= index <= 29

    restores = restored_frames(rng, 4)
    assert [i for i in range(10, 36) if restores(F(i))] == list(range(16, 30))


def test_smoother_decisions_do_not_depend_on_the_tracks_reference_scale() -> None:
    """The same face measured in two reference scales (a chunk that first sees it a little
    larger than the single run did) gives the same alignment in pixels, manoeuvres included."""
    rng = np.random.default_rng(3)
    iod_per_width = 0.2
    pixels = []
    for k in range(150):
        turn = 40.0 * (k - 80) if k > 80 else 0.0  # a sudden pan halfway
        pixels.append(np.array([300 + 2 * k + turn + rng.normal(0, 0.4),
                                200 + rng.normal(0, 0.4), math.log(100 + 0.1 * k), 0.01 * k]))
    estimates = []
    for reference in (20.0, 23.0):
        smoother = TrackSmoother("rts", iod_per_width=iod_per_width)
        for k, p in enumerate(pixels):
            smoother.add(k, np.array([p[0] / reference, p[1] / reference,
                                      p[2] - math.log(reference), p[3]]))
        estimates.append(np.array([smoother.estimate(k, k + 15)[:2] * reference
                                   for k in range(150)]))
        assert smoother.maneuvers >= 1
    assert np.abs(estimates[0] - estimates[1]).max() < 1e-6


# -- the command --------------------------------------------------------------------------------

TESTDATA = REPO.parent / "shared" / "testdata"
CLIP = TESTDATA / "videos" / "liveportrait_d18.mp4"


def _job(output: Path, backend: list[str]) -> list[str]:
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    return [str(CLIP), str(output), *backend, "--device", "cpu", "--detector", "mobile0.25",
            "--detector-weights", str(weights), "--codec", "ffv1", "--pix-fmt", "bgr0"]


def _processes_in_session(sid: int) -> list[int]:
    """Processes whose session is ``sid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after the name: state, ppid, pgrp, session
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("target", ["group", "driver"])
def test_ctrl_c_stops_every_worker_exits_130_and_leaves_nothing(testdata, tmp_path: Path,
                                                                target: str) -> None:
    """Ctrl-C as a terminal sends it (to the whole process group), and SIGINT to the driver
    alone: exit 130, no file at the output, nothing left beside it, no process left."""
    output = tmp_path / "out.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpen_video", *_job(output, ["--backend", "identity"]),
         "--workers", "2", "--progress", "json"],
        cwd=REPO, env={**env(), "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:  # wait until the workers render
            event = json.loads(line)
            if event.get("event") == "progress" and event["frame"] >= 2:
                break
        else:
            pytest.fail(f"no progress before the end: {proc.stderr.read()}")
        if target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 5
    while _processes_in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 130, proc.stderr.read()
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []  # no segment folder, no temporary file
    assert _processes_in_session(proc.pid) == []


def test_workers_run_reports_the_chunks_host_syncs(testdata, tmp_path: Path) -> None:
    """``--workers 2 --progress json``: the closing summary sums the chunks' host syncs (what
    ``bench --workers`` reads back): one finished-frame download per frame each chunk composed
    (its warm-up frames included) and the detection rounds; and the busiest worker's rendering
    time (``bench --workers``' fps after load)."""
    from gpen_video.bench.workers import _summary_event

    output = tmp_path / "out.mkv"
    done = subprocess.run(
        [sys.executable, "-m", "gpen_video", *_job(output, ["--backend", "identity"]),
         "--geometry", "torch",  # the device path's compositing, counted on the CPU too
         "--frames", "0-23", "--workers", "2", "--progress", "json"],
        cwd=REPO, env={**env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr
    summary = _summary_event(done.stdout)
    assert summary["frames"] == 24 and summary["chunks"] == 2
    paste = summary["host_syncs"]["paste"]["download"]
    assert paste >= 24  # every output frame, plus the second chunk's primed frames
    assert summary["host_syncs"]["detect"]["download"] >= 2
    # the keys a single run's summary has (pipeline.Summary.as_dict)
    assert summary["host_syncs_per_frame"] == pytest.approx(paste / 24, abs=1e-3)
    assert summary["detect_syncs_per_frame"] > 0
    # fps once the workers were up: the busiest worker's chunk time, inside the render time
    assert 0 < summary["busiest_worker_seconds"] < summary["render_seconds"]
    assert summary["fps_after_load"] == pytest.approx(24 / summary["busiest_worker_seconds"],
                                                      rel=1e-3)
    assert summary["fps_after_load"] > summary["fps"]


def test_a_worker_error_exits_as_a_single_run_does(testdata, tmp_path: Path) -> None:
    """A detector weights file that does not exist: the same exit code and message with 1 and
    2 workers (the error is raised in the workers), and nothing at the output."""
    results = []
    for workers in ("1", "2"):
        output = tmp_path / f"out{workers}.mkv"
        args = _job(output, ["--backend", "identity"])
        args[args.index("--detector-weights") + 1] = str(tmp_path / "missing.pth")
        done = subprocess.run([sys.executable, "-m", "gpen_video", *args, "--workers", workers,
                               "--progress", "none"], cwd=REPO, env=env(), capture_output=True,
                              text=True, timeout=300)
        results.append((done.returncode, done.stderr.strip().splitlines()[-1]))
        assert not output.exists()
    assert results[0][0] == 2
    assert results[0] == results[1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_two_workers_render_what_one_process_renders(testdata, tmp_path: Path) -> None:
    """Done-when 4 of issue 17 (module docstring): same frames, timestamps and audio; the same
    pixels outside the faces; every frame ≥ 40 dB; no step at the chunk border."""
    from tests.workers_helpers import compare, single_run

    gpen = ["--model", "GPEN-BFR-256", "--random-weights", "--backend", "torch"]
    single, chunked = tmp_path / "single.mkv", tmp_path / "chunked.mkv"
    faces = single_run([*_job(single, gpen), "--progress", "none"], threads=1)
    subprocess.run([sys.executable, "-m", "gpen_video", *_job(chunked, gpen), "--workers", "2",
                    "--progress", "none"], cwd=REPO, env={**env(), "OMP_NUM_THREADS": "1"},
                   check=True, timeout=3000)
    result = compare(single, chunked, faces)
    record = os.environ.get("GPEN_VIDEO_WORKERS_RECORD")  # benchmarks/RESULTS.md's numbers
    if record:
        from benchmarks.workers_consistency import record_comparison

        record_comparison(Path(record), CLIP, 2, result, single, chunked)
    with VideoSource(CLIP) as src:
        assert result.frames == src.frame_count == 216
    border = 108  # chunks 0-107 and 108-215
    summary = result.summary([border])
    assert result.pts_single == result.pts_chunked
    audio = [stream_packets(p, "audio") for p in (single, chunked)]
    assert len(audio[0][0]) > 0 and audio[0] == audio[1]
    assert summary["outside_faces_max_diff"] == 0
    assert min(result.psnr[:border]) == float("inf")  # the first chunk is the single run's
    assert summary["worst_psnr"] >= 40.0, summary
    # no step: the change from frame 107 to 108 is what the single run has, as closely as
    # the frames inside the second chunk follow theirs
    assert summary["border_steps"][border] <= max(0.05, summary["largest_step_elsewhere"])


def test_bench_times_the_same_job_it_was_given(tmp_path: Path) -> None:
    """``bench --workers`` runs ``gpen-video`` with arguments that parse back into the job."""
    import argparse

    from gpen_video.bench.workers import command_args, parse_counts
    from gpen_video.commands import bench as bench_command
    from gpen_video.commands import run as run_command

    parser = argparse.ArgumentParser()
    bench_command.configure(parser)
    options = bench_command.options_from_args(parser.parse_args(
        ["--model", "GPEN-BFR-256", "--random-weights", "--detector", "mobile0.25",
         "--detect", "full", "--device", "cpu", "--temporal", "off", "--codec", "ffv1",
         "--workers", "1,2"]))
    args = command_args(options.run, tmp_path / "in.mp4", tmp_path / "out.mkv", 30)
    parser = argparse.ArgumentParser()
    run_command.configure(parser)
    parsed = run_command.options_from_args(parser.parse_args(args))
    for part in ("model", "restore", "detect", "temporal", "encode"):
        assert getattr(parsed, part) == getattr(options.run, part), part
    assert (parsed.range.start, parsed.range.end) == (0, 29)
    assert parse_counts("1,2") == [1, 2]
    with pytest.raises(UsageError):
        parse_counts("0,2")


def test_bench_workers_counts_the_cpu_time_of_the_command_and_of_its_workers() -> None:
    """``bench --workers`` divides the CPU time of the finished command, its worker processes
    included, by the wall time: a grandchild's busy loop is counted."""
    from gpen_video.bench.workers import _children_cpu_seconds

    worker = ("import time\nt = time.process_time()\n"
              "while time.process_time() - t < 0.3:\n    pass\n")
    command = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {worker!r}])\n"
    before = _children_cpu_seconds()
    subprocess.run([sys.executable, "-c", command], check=True)
    assert _children_cpu_seconds() - before >= 0.29


def test_onnxruntime_takes_its_threads_from_the_restore_options() -> None:
    """Workers give onnxruntime their share of the cores (it ignores OMP_NUM_THREADS)."""
    pytest.importorskip("onnxruntime")
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer
    from gpen_video.options import ModelOptions, RestoreOptions

    restorer = OnnxRuntimeRestorer(ModelOptions(name="GPEN-BFR-256"),
                                   RestoreOptions(device="cpu", threads=1))
    assert restorer._threads == 1


def test_workers_auto_that_means_one_process_is_the_single_run(monkeypatch) -> None:
    import argparse

    from gpen_video.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.configure(parser)
    args = parser.parse_args(["in.mp4", "out.mp4", "--device", "cpu", "--workers", "auto"])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert run_command._workers(args) is None
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert run_command._workers(args).count == 4
