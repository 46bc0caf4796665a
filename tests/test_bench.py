"""``gpen-video bench``: the command prints the table and writes the same numbers as JSON; the
per-stage times of the serial breakdown add up to the wall time; a stage slowed for real shows up
in its own row; workers as processes; device planning and scene parsing.

Small and fast: a random-weight GPEN of the real architecture at 128 px (or the identity
restorer), the real MobileNet-0.25 detector, clips synthesised at 320×240 by the bench itself.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gpen_video.backends.identity import IdentityRestorer
from gpen_video.bench import run_bench
from gpen_video.bench.core import plan_devices
from gpen_video.bench.measure import RecordingClock, percentile
from gpen_video.bench.synth import Scene, parse_scene
from gpen_video.cli import main
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.options import (BenchOptions, DetectOptions, ModelOptions, RestoreOptions,
                                RunOptions)
from gpen_video.pipeline import STAGES

from pipeline_helpers import save_small_gpen

SCENE = "320x240:1"


def _detector_weights(testdata: Path) -> Path:
    return testdata / "weights" / "detection_mobilenet0.25_Final.pth"


@pytest.fixture(scope="module")
def small_gpen(tmp_path_factory) -> Path:
    return save_small_gpen(tmp_path_factory.mktemp("bench_model") / "gpen128.pth")


@pytest.fixture(scope="module")
def cli_run(testdata, small_gpen, tmp_path_factory):
    """One ``gpen-video bench`` run through the CLI: (exit code, stdout, report, plot path)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("bench_cli")
    report_path, plot_path = out / "report.json", out / "stages.png"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["bench", "--model", str(small_gpen), "--compile", "off", "--detector",
                     "mobile0.25",
                     "--detector-weights", str(_detector_weights(testdata)), "--scene", SCENE,
                     "--frames", "8", "--repeats", "2", "--batch", "4", "--gpus", "all",
                     "--json", str(report_path), "--plot", str(plot_path), "--quality", "-q"])
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return code, stdout.getvalue(), report, plot_path


def _row(text: str, label: str) -> list[str]:
    """The cells of the table row whose label is ``label`` (cells split on 2+ spaces)."""
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_bench_cli_prints_the_table_and_json_holds_the_same_numbers(cli_run):
    code, text, report, plot_path = cli_run
    assert code == 0, text
    assert report is not None
    assert "per-stage time (s)" in text and "no GPU: 1 CPU worker" in text
    (scene,) = report["scenes"]
    (worker,) = scene["workers"]
    ov, se = worker["overlap"], worker["serial"]
    assert len(ov["runs"]) == len(se["runs"]) == 2
    assert ov["frames"] == 8 and ov["faces"] >= 6  # one face per frame, found by the detector
    assert worker["gflop_per_face"] > 0  # counted from the model given (128 px, narrow)
    # the printed numbers are the JSON's
    assert _row(text, "fps")[:2] == [f"{ov['fps']['median']:.3f}",
                                     f"{ov['fps']['min']:.3f}–{ov['fps']['max']:.3f}"]
    assert _row(text, "faces/s")[0] == f"{ov['faces_per_s']['median']:.3f}"
    assert _row(text, "frame latency p95 (ms)")[0] == f"{ov['latency_p95_ms']['median']:.0f}"
    assert _row(text, "peak RSS (MiB)")[0] == f"{ov['peak_rss_mib']['median']:.0f}"
    # a CPU run: no GPU-only figures, and the one-face passes say why
    for gpu_only in ("peak GPU memory", "host syncs", "GPU busy"):
        assert gpu_only not in text
    assert "one face per forward pass is faster per face than a batch" in text
    labels = {"align": "align/warp", "restore": "restore (GPEN)", "track": "track/smooth"}
    for stage in STAGES:
        cells = _row(text, labels.get(stage, stage))
        assert cells[0] == f"{ov['stage_seconds'][stage]['median']:.3f}"  # overlap busy
        assert cells[2] == f"{se['stage_seconds'][stage]['median']:.3f}"  # serial
    assert _row(text, "wall ³")[0] == f"{ov['seconds']['median']:.3f}"
    # the measurements themselves are sane
    lat = ov["latency_p50_ms"]["median"], ov["latency_p95_ms"]["median"]
    assert 0 < lat[0] <= lat[1] < 1000 * max(r["seconds"] for r in ov["runs"])
    assert ov["peak_rss_mib"]["median"] > 50
    assert report["versions"]["torch"] and report["machine"]["logical_cpus"] >= 1
    # host CPU: the process's threads used CPU time, no more than all its CPUs for the run
    cpus = report["machine"]["logical_cpus"]
    for mode in (ov, se):
        for run in mode["runs"]:
            assert run["cpu_seconds"] > 0
            assert run["cpu_ms_per_frame"] == pytest.approx(1000 * run["cpu_seconds"] / 8)
            assert 0 < run["cpu_cores_busy"] <= cpus * 1.05, run
    line = next(x for x in text.splitlines() if x.strip().startswith("host CPU"))
    assert (f"overlap {ov['cpu_ms_per_frame']['median']:.0f} ms per frame, "
            f"{ov['cpu_cores_busy']['median']:.2f} CPUs busy") in line
    assert f"serial {se['cpu_ms_per_frame']['median']:.0f} ms per frame" in line
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --quality: gpen-video measure's numbers of the last timed output, printed as in the JSON
    quality = worker["quality"]
    assert quality["frames"] == 8 and quality["tracks"]
    line = next(x for x in text.splitlines() if "quality (gpen-video measure" in x)
    assert f"warping error {quality['clip']['warp_ratio']:.3f}" in line
    assert f"sharpness {quality['clip']['sharpness_ratio']:.3f}" in line
    assert quality["change_inside"] > quality["change_outside"]  # the faces were restored


def test_serial_stage_times_add_up_to_the_wall_time(cli_run):
    _, text, report, _ = cli_run
    (worker,) = report["scenes"][0]["workers"]
    for run in worker["serial"]["runs"]:
        total = sum(run["stage_seconds"].values())
        # one stage at a time: the stages cannot add up to more than the wall time …
        assert total <= run["seconds"] * 1.001 + 1e-3
        # … and everything the pipeline does is inside some stage (within 10 %)
        assert abs(total - run["seconds"]) <= 0.10 * run["seconds"], run
    for run in worker["overlap"]["runs"]:
        # overlapped: the stage threads' busy time covers the wall time up to idle gaps
        assert run["idle_seconds"] <= 0.10 * run["seconds"], run


def test_serial_clock_runs_one_stage_at_a_time(testdata, small_gpen, tmp_path):
    """Serial wiring: no two stages' busy intervals overlap (they do in overlap)."""
    from gpen_video import pipeline
    from gpen_video.bench.synth import default_face_image, synthesize_clip
    from gpen_video.options import RangeOptions

    clip = synthesize_clip(default_face_image(), Scene(320, 240, 2), 8, tmp_path / "c.mp4")
    job = RunOptions(input=clip, output=tmp_path / "o.mp4", overwrite=True, progress="none",
                     model=ModelOptions(name="g", checkpoint_path=small_gpen),
                     restore=RestoreOptions(backend="torch", device="cpu", batch=4),
                     detect=DetectOptions(network="mobile0.25", device="cpu",
                                          weights=_detector_weights(testdata)),
                     range=RangeOptions(start=0, end=7))
    clock = RecordingClock()
    summary = pipeline.run(job, clock=clock, serial=True)
    spans = sorted((a, b, s) for s, ivs in clock.intervals.items() for a, b in ivs)
    assert summary.frames == 8 and len(spans) > 8 * 4
    for (a0, b0, s0), (a1, b1, s1) in zip(spans, spans[1:]):
        assert a1 >= b0 - 1e-6, f"{s0} {a0:.4f}–{b0:.4f} overlaps {s1} {a1:.4f}–{b1:.4f}"
    assert len(clock.frame_latencies(summary.frames)) == 8


class SleepyRestorer(IdentityRestorer):
    """The identity restorer plus a real sleep per batch."""

    def __init__(self, delay: float, **kw) -> None:
        super().__init__(**kw)
        self.delay = delay
        self.calls = 0
        self.sleeps: list[tuple[float, float]] = []  # perf_counter intervals slept

    def _restore_impl(self, batch):
        self.calls += 1
        self.sleeps.append(_sleep(self.delay))
        return super()._restore_impl(batch)


class SleepyDetector:
    """A real detector plus a real sleep per call."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay, self.calls = inner, delay, 0
        self.options = inner.options
        self.sleeps: list[tuple[float, float]] = []

    def __getattr__(self, name):  # the rest of the detector (device, lane) is the inner one's
        return getattr(self.inner, name)

    def detect(self, frames):
        self.calls += 1
        self.sleeps.append(_sleep(self.delay))
        return self.inner.detect(frames)


def _sleep(delay: float) -> tuple[float, float]:
    t0 = time.perf_counter()
    time.sleep(delay)
    return t0, time.perf_counter()


@pytest.mark.parametrize("stage", ["restore", "detect"])
def test_a_slowed_stage_shows_up_in_its_own_row(testdata, tmp_path, stage):
    from gpen_video.faces import FaceDetector

    run = RunOptions(input=Path("-"), output=Path("-"), progress="none",
                     restore=RestoreOptions(backend="identity", device="cpu", batch=4),
                     detect=DetectOptions(network="mobile0.25", device="cpu", batch=4,
                                          weights=_detector_weights(testdata),
                                          mode="full"))  # SleepyDetector slows detect()
    options = BenchOptions(run=run, scenes=(SCENE,), frames=8, repeats=1, warmup=2,
                           mode="both", workdir=tmp_path)
    detector = FaceDetector(run.detect)
    delay = 0.2
    slow_r = IdentityRestorer(restore=RestoreOptions(batch=4), size=256)
    slow_d = detector
    if stage == "restore":
        slow_r = SleepyRestorer(delay, restore=RestoreOptions(batch=4), size=256)
    else:
        slow_d = SleepyDetector(detector, delay)
    slow = run_bench(options, restorer=slow_r, detector=slow_d)
    (ws,) = slow["scenes"][0]["workers"]
    for mode in ("serial", "overlap"):
        (rs,) = ws[mode]["runs"]
        # calls in this run: forward passes of the restorer, or batches of 4 frames detected
        calls = rs["batches"] if stage == "restore" else -(-rs["frames"] // 4)
        slept = delay * calls
        assert slept >= 2 * delay
        # the real delay lands in the slowed stage's row (it is timed inside it: no noise
        # can take it out); that it lands in no other row is checked interval by interval in
        # test_a_stage_s_sleep_lies_in_its_own_intervals (run-to-run differences of the other
        # rows are at the mercy of the machine's load)
        assert rs["stage_seconds"][stage] >= slept, (mode, rs["stage_seconds"], slept)
        if mode == "serial":
            assert abs(sum(rs["stage_seconds"].values()) - rs["seconds"]) <= 0.1 * rs["seconds"]


@pytest.mark.parametrize("serial", [True, False])
@pytest.mark.parametrize("stage", ["restore", "detect"])
def test_a_stage_s_sleep_lies_in_its_own_intervals(testdata, tmp_path, stage, serial):
    """Where a stage's time goes, without comparing two runs: every sleep of the slowed stage
    lies inside one of that stage's clock intervals, and (serial) overlaps no other stage's."""
    from gpen_video import pipeline
    from gpen_video.bench.synth import default_face_image, synthesize_clip
    from gpen_video.faces import FaceDetector
    from gpen_video.options import RangeOptions

    clip = synthesize_clip(default_face_image(), Scene(320, 240, 1), 8, tmp_path / "c.mp4")
    job = RunOptions(input=clip, output=tmp_path / "o.mp4", overwrite=True, progress="none",
                     restore=RestoreOptions(backend="identity", device="cpu", batch=4),
                     detect=DetectOptions(network="mobile0.25", device="cpu", batch=4,
                                          weights=_detector_weights(testdata),
                                          mode="full"),  # SleepyDetector slows detect()
                     range=RangeOptions(start=0, end=7))
    restorer = IdentityRestorer(restore=RestoreOptions(batch=4), size=256)
    detector = FaceDetector(job.detect)
    if stage == "restore":
        restorer = slowed = SleepyRestorer(0.05, restore=RestoreOptions(batch=4), size=256)
    else:
        detector = slowed = SleepyDetector(detector, 0.05)
    clock = RecordingClock()
    pipeline.run(job, restorer=restorer, detector=detector, clock=clock, serial=serial)
    assert len(slowed.sleeps) >= 2
    for a, b in slowed.sleeps:
        assert any(x <= a and b <= y for x, y in clock.intervals[stage]), (stage, a, b)
        if serial:
            for other in STAGES:
                if other != stage:
                    assert not any(x < b and a < y for x, y in clock.intervals[other]), other


def test_workers_as_processes_one_cpu_worker(testdata, small_gpen, tmp_path, monkeypatch):
    """The several-GPU path (one process per device, a barrier per run) as it can run here: one
    CPU worker process."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    run = RunOptions(input=Path("-"), output=Path("-"), progress="none",
                     model=ModelOptions(name="g", checkpoint_path=small_gpen),
                     restore=RestoreOptions(backend="torch", device="auto", batch=4),
                     detect=DetectOptions(network="mobile0.25", device="auto",
                                          weights=_detector_weights(testdata)))
    options = BenchOptions(run=run, scenes=(SCENE,), frames=4, repeats=1, warmup=0,
                           mode="overlap", gpus="1", workdir=tmp_path)
    report = run_bench(options, processes=True)
    assert report["config"]["workers_as_processes"] is True
    assert report["config"]["device_note"] == "no GPU: 1 CPU worker"
    (scene,) = report["scenes"]
    (worker,) = scene["workers"]
    assert worker["device"] == "cpu" and worker["overlap"]["frames"] == 4
    (run0,) = worker["overlap"]["runs"]
    assert scene["total_fps"]["overlap"]["median"] == pytest.approx(
        run0["frames"] / run0["seconds"], rel=1e-3)


def test_plan_devices_without_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plan_devices("all", "auto") == (["cpu"], "no GPU: 1 CPU worker")
    assert plan_devices("4", "auto")[0] == ["cpu"]
    assert plan_devices("0", "auto")[0] == ["cpu"]
    with pytest.raises(UsageError):
        plan_devices("two", "auto")
    with pytest.raises(BackendUnavailable):
        plan_devices("all", "cuda")


def test_plan_devices_several_gpus(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert plan_devices("all", "auto")[0] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert plan_devices("2", "auto")[0] == ["cuda:0", "cuda:1"]
    assert plan_devices("all", "cuda:3")[0] == ["cuda:3"]
    with pytest.raises(UsageError):
        plan_devices("5", "auto")


def test_scenes_and_inputs():
    assert parse_scene("1080p:4") == Scene(1920, 1080, 4)
    assert parse_scene("4k:1") == Scene(3840, 2160, 1)
    assert parse_scene("640x360:2").name == "640x360:2"
    for bad in ("1080p:x", "big:1", "641x360:1", "1080p:0"):
        with pytest.raises(UsageError):
            parse_scene(bad)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0


def test_bench_without_input_or_face_when_the_package_face_is_missing(monkeypatch, tmp_path):
    import gpen_video.bench.synth as synth

    monkeypatch.setattr(synth, "default_face_image", lambda: None)
    run = RunOptions(input=Path("-"), output=Path("-"),
                     restore=RestoreOptions(backend="identity", device="cpu"))
    with pytest.raises(UsageError, match="--face"):
        run_bench(replace(BenchOptions(run=run), workdir=tmp_path), restorer=IdentityRestorer(),
                  detector=object())


def test_gpu_peak_from_compute_capability_sms_and_clock():
    """The floor comes from the device's properties; the name is a label (an H100 named
    "NVIDIA H100 80GB HBM3" gets its peak like any other)."""
    from gpen_video.device.peak import effective_precision, peak_from

    h100 = peak_from("NVIDIA H100 80GB HBM3", (9, 0), 132, 1830.0, "fp16")
    assert h100.flops == pytest.approx(989.4e12, rel=1e-3)  # NVIDIA's dense fp16 figure
    assert "132 SMs" in h100.describe() and "H100 80GB HBM3" in h100.describe()
    a100 = peak_from("whatever", (8, 0), 108, 1410.0, "tf32")
    assert a100.flops == pytest.approx(156e12, rel=1e-2)
    l40s = peak_from("NVIDIA L40S", (8, 9), 142, 2520.0, "fp32")
    assert l40s.flops == pytest.approx(91.6e12, rel=1e-2)
    assert peak_from("future", (12, 1), 100, 2000.0, "fp16").flops is None
    assert peak_from("no clock", (9, 0), 132, None, "fp16").flops is None
    assert effective_precision("fp32", allow_tf32=True) == "tf32"  # fp32 rows run on TF32
    assert effective_precision("fp32", allow_tf32=False) == "fp32"
    assert effective_precision("bf16", allow_tf32=True) == "bf16"


def test_flops_of_the_512_model():
    """The figure the compute floor is computed from: GPEN-BFR-512 ≈ 276 GFLOP per face."""
    from gpen_video.bench.measure import gpen_config_of, gpen_flops_per_face

    config = gpen_config_of(ModelOptions(name="GPEN-BFR-512"))
    assert gpen_flops_per_face(config) / 1e9 == pytest.approx(276.2, abs=0.5)


def test_workers_table_shows_gpu_figures_only_where_a_gpu_ran():
    """``bench --workers``: GPU busy and host syncs are GPU figures; a CPU run's table has no
    such columns (they read as measured zeros there), a GPU run's has them."""
    from gpen_video.bench.workers import format_workers

    def report(busy):
        row = {"workers": 1, "seconds_median": 10.0, "seconds_min": 9.0, "seconds_max": 11.0,
               "total_fps": 3.2, "fps_after_load": 3.5, "speedup_vs_first": 1.0,
               "gpu_busy_fraction": busy, "cpu_cores_busy": 1.9,
               "host_syncs_per_frame": 0.0, "detect_syncs_per_frame": 0.27}
        return {"config": {}, "load_avg_1min": {}, "scenes": [
            {"description": "640x360, 1 moving face", "frames": 64, "rows": [row]}]}

    cpu, gpu = format_workers(report(None)), format_workers(report(0.42))
    assert "GPU busy" not in cpu and "host syncs" not in cpu and "0.27" not in cpu
    assert "CPUs busy" in cpu and "1.90" in cpu
    assert "GPU busy" in gpu and "42%" in gpu and "0.00, 0.27" in gpu
