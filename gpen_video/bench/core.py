"""Run the real pipeline on a clip under the clock; collect medians; one worker per GPU.

What a timed run is: one :func:`gpen_video.pipeline.run` call on the clip's first ``frames``
frames with the restorer and detector already loaded (as a farm worker keeps them), after an
untimed warm-up run. Its wall time is the pipeline's own (first frame decoded → output closed;
opening the files is reported apart as ``setup``). Before and after each run the GPU is
synchronised; inside the pipeline every stage's clock read follows a host copy of its result
(the restorer and the detector return numpy), so GPU work is inside the stage that queued it.

Two ways to run the same pipeline, interleaved repeat by repeat so they share the machine's
conditions:

* ``overlap`` — the product as shipped: five threads, bounded queues. Gives end-to-end fps,
  faces/s, frame latency, peak memory. Its per-stage times are each thread's busy time; stages
  run at the same time, so they add up to more than the wall time (the "idle" row is the time no
  stage was busy at all).
* ``serial`` — the same stages run one at a time in one thread (``pipeline.run(serial=True)``):
  every second of the wall time belongs to exactly one stage or to the "other" row (hand-overs
  and untimed code, measured as wall − Σ stages). This is the per-stage breakdown that adds up;
  it is slower than ``overlap`` by the overlap it removes.

Several GPUs: one worker process per GPU (``CUDA_VISIBLE_DEVICES`` set before torch loads), each
with its own restorer, detector and output file, released together at a barrier before every
run; fps per GPU and in total (frames of all workers ÷ the slowest worker's wall, per repeat).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpen_video.errors import BackendUnavailable, GpenVideoError, UsageError
from gpen_video.options import BenchOptions, RangeOptions, RunOptions

MODES = ("overlap", "serial")
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ------------------------------------------------------------------------------ planning


def plan_devices(gpus: str, device: str) -> tuple[list[str], str]:
    """(one device per worker, a note). ``gpus``: ``all`` or a count; ``0`` or ``--device cpu``
    or no CUDA GPU: a single CPU worker.

    Raises:
        UsageError: a bad count, or more GPUs than there are.
        BackendUnavailable: a CUDA device was asked for and there is none.
    """
    text = str(gpus).strip().lower()
    if text != "all":
        try:
            count = int(text)
        except ValueError:
            raise UsageError(f"--gpus {gpus!r}: expected all or a number")
        if count < 0:
            raise UsageError(f"--gpus {gpus!r}: expected all or a number >= 0")
    device = (device or "auto").lower()
    if device == "cpu" or text == "0":
        return ["cpu"], "CPU (asked for): 1 CPU worker"
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        if device.startswith("cuda"):
            raise BackendUnavailable(f"--device {device}: torch sees no CUDA GPU here")
        return ["cpu"], "no GPU: 1 CPU worker"
    if device.startswith("cuda:"):
        if text not in ("all", "1"):
            raise UsageError(f"--device {device} names one GPU; drop it to use --gpus {gpus}")
        return [device], "1 GPU worker (--device)"
    wanted = available if text == "all" else int(text)
    if wanted > available:
        raise UsageError(f"--gpus {gpus}: this machine has {available} GPU(s)")
    return [f"cuda:{i}" for i in range(wanted)], f"{wanted} GPU worker(s), one process each"


def _clip_frames(path: Path) -> tuple[int, int, int]:
    from gpen_video.media import VideoSource

    with VideoSource(path) as source:
        return source.width, source.height, source.output_frame_count


def prepare_clips(options: BenchOptions, workdir: Path, log: Log = _quiet) -> list[dict]:
    """The clips to time: the given one, or one synthesised per scene (written now, untimed)."""
    from gpen_video.bench.synth import default_face_image, parse_scene, synthesize_clip

    if options.frames < 1:
        raise UsageError(f"--frames {options.frames}: must be at least 1")
    if options.clip is not None:
        clip = Path(options.clip)
        width, height, count = _clip_frames(clip)
        return [{"scene": "clip", "description": f"{clip.name} ({width}×{height})",
                 "clip": clip, "width": width, "height": height, "faces_per_frame": None,
                 "frames": min(options.frames, count) if count else options.frames}]
    face = options.face or default_face_image()
    if face is None:
        raise UsageError("gpen-video bench needs INPUT (a clip) or --face IMAGE (a face photo to "
                         "synthesise clips from); the package's default face is missing: "
                         "reinstall gpen-video")
    clips = []
    for text in options.scenes:
        scene = parse_scene(text)
        path = workdir / f"scene_{scene.name.replace(':', '_')}_{options.frames}f.mp4"
        if not path.is_file():
            log(f"bench: synthesising {scene.describe()}, {options.frames} frames → {path}")
            synthesize_clip(Path(face), scene, options.frames, path)
        clips.append({"scene": scene.name, "description": scene.describe(), "clip": path,
                      "width": scene.width, "height": scene.height,
                      "faces_per_frame": scene.faces, "frames": options.frames})
    return clips


def _job(template: RunOptions, clip: Path, output: Path, frames: int, device: str) -> RunOptions:
    return replace(template, input=clip, output=output, overwrite=True, progress="none",
                   range=RangeOptions(start=0, end=frames - 1),
                   restore=replace(template.restore, device=device),
                   detect=replace(template.detect, device=device))


# ------------------------------------------------------------------------------ one worker


class Worker:
    """The loaded restorer and detector of one device, and what is known about its model."""

    def __init__(self, template: RunOptions, device: str, restorer: Any = None,
                 detector: Any = None) -> None:
        from gpen_video.backends import create_restorer
        from gpen_video.bench.measure import (device_name, device_peak_flops, gpen_config_of,
                                              gpen_flops_per_face)
        from gpen_video.faces import FaceDetector

        self.device = device
        job = _job(template, Path("-"), Path("-"), 1, device)
        self.template = job
        self.own = restorer is None
        self.restorer = restorer if restorer is not None else create_restorer(job.model,
                                                                              job.restore)
        self.restorer.load()
        self.detector = detector if detector is not None else FaceDetector(job.detect)
        self.device_name = device_name(device)
        self.config = None if self.restorer.name == "identity" else gpen_config_of(job.model)
        self.flops = gpen_flops_per_face(self.config) if self.config is not None else None
        self.precision = self.restorer.precision  # every Restorer has one (base: fp32)
        self.peak_flops, self.peak_method = (device_peak_flops(device, self.precision)
                                             if self.flops else (None, "no network"))

    def close(self) -> None:
        if self.own:
            self.restorer.close()

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "device_name": self.device_name,
                "restorer": self.restorer.describe(), "precision": self.precision,
                "detector_runtime": self.detector.forward.name,
                "max_forward_batch": self.restorer.spec.max_batch,
                "gflop_per_face": None if self.flops is None else round(self.flops / 1e9, 3),
                "peak_gflop_s": None if self.peak_flops is None else round(self.peak_flops / 1e9,
                                                                           1),
                "peak_method": self.peak_method}

    def timed_run(self, job: RunOptions, serial: bool) -> dict[str, Any]:
        """One pipeline run under the clock; everything measured about it."""
        from gpen_video import pipeline
        from gpen_video.bench.measure import (PeakMemory, RecordingClock, load_average,
                                              percentile, synchronize)

        clock = RecordingClock()
        load = load_average()
        with PeakMemory(self.device) as peak:
            synchronize(self.device)
            t0, cpu0 = time.perf_counter(), time.process_time()
            summary = pipeline.run(job, restorer=self.restorer, detector=self.detector,
                                   clock=clock, serial=serial)
            synchronize(self.device)
            outer = time.perf_counter() - t0
            # every thread of the process: the codecs', the runtimes' pools, the stages'
            cpu = time.process_time() - cpu0
        stages = dict(clock.seconds)
        wall = summary.seconds
        lat = clock.frame_latencies(summary.frames)
        run = {"mode": "serial" if serial else "overlap", "frames": summary.frames,
               "faces": summary.faces, "batches": summary.batches, "seconds": wall,
               "setup_seconds": summary.setup_seconds, "call_seconds": outer,
               "fps": summary.frames / wall if wall > 0 else 0.0,
               "faces_per_s": summary.faces / wall if wall > 0 else 0.0,
               "cpu_seconds": cpu,
               "cpu_ms_per_frame": 1000 * cpu / summary.frames if summary.frames else None,
               "cpu_cores_busy": cpu / outer if outer > 0 else None,
               "stage_seconds": stages, "stage_sum": sum(stages.values()),
               "idle_seconds": max(0.0, wall - clock.busy_union()),
               "latency_p50_ms": None if not lat else 1000 * percentile(lat, 50),
               "latency_p95_ms": None if not lat else 1000 * percentile(lat, 95),
               "peak_rss_mib": peak.rss_mib, "peak_rss_method": peak.rss_method,
               "peak_gpu_mib": peak.gpu_mib, "load_avg_1min": load,
               # gpen_video.device: host syncs of the restore/composite path, CUDA-event times
               "host_syncs": summary.host_syncs,
               "host_syncs_per_frame": summary.syncs_per_frame if summary.host_syncs else None,
               "detect_syncs_per_frame": (summary.detect_syncs_per_frame if summary.host_syncs
                                          else None),
               "device_busy": summary.device_busy,
               "device_stage_seconds": dict(summary.device_seconds)}
        run["other_seconds"] = wall - run["stage_sum"]
        if self.flops and wall > 0:
            run["gflop_s"] = summary.faces * self.flops / wall / 1e9
            # on a GPU the forward pass's time is its CUDA events' (the host only queues it)
            restore_s = run["device_stage_seconds"].get("restore") or stages.get("restore", 0.0)
            run["restore_gflop_s"] = (summary.faces * self.flops / restore_s / 1e9
                                      if restore_s > 0 else None)
        return run

    def bench(self, clip: dict, options: BenchOptions, workdir: Path, modes: tuple[str, ...],
              barrier: Any = None, log: Log = _quiet,
              after_repeat: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Warm up, then ``options.repeats`` timed runs per mode (interleaved); ``after_repeat(i)``
        is called after each repeat (a comparison run can share the same conditions)."""
        from gpen_video import pipeline

        frames = clip["frames"]
        tag = f"{clip['scene'].replace(':', '_')}_{self.device.replace(':', '')}"
        suffix = Path(clip["clip"]).suffix or ".mp4"
        batch = max(1, self.template.restore.batch)
        warm = options.warmup if options.warmup is not None else min(frames, 2 * batch)
        faces_from, analysis_seconds = None, None
        if options.faces_from:  # --faces-from analyse: the timed runs read an analysis
            from gpen_video.pipeline.analysis import analyse

            faces_from = workdir / f"faces_{tag}.faces"
            log(f"bench: {clip['scene']} on {self.device}: analysing {frames} frames (untimed)")
            analysis_seconds = analyse(
                replace(_job(self.template, clip["clip"], faces_from, frames, self.device),
                        progress="none"), faces_from, detector=self.detector).seconds
        if warm > 0:
            log(f"bench: {clip['scene']} on {self.device}: warm-up run, {warm} frames (untimed)")
            pipeline.run(replace(_job(self.template, clip["clip"],
                                      workdir / f"warmup_{tag}{suffix}", warm, self.device),
                                 faces_from=faces_from),
                         restorer=self.restorer, detector=self.detector)
        runs: dict[str, list] = {m: [] for m in modes}
        for i in range(options.repeats):
            for mode in modes:
                job = replace(_job(self.template, clip["clip"],
                                   workdir / f"out_{tag}_{mode}{suffix}", frames, self.device),
                              faces_from=faces_from)
                if barrier is not None:
                    barrier.wait()
                run = self.timed_run(job, serial=mode == "serial")
                runs[mode].append(run)
                log(f"bench: {clip['scene']} on {self.device}: {mode} run {i + 1}/"
                    f"{options.repeats}: {run['fps']:.3f} fps, stages {run['stage_sum']:.2f} s "
                    f"of {run['seconds']:.2f} s wall (load {run['load_avg_1min']})")
            if after_repeat is not None:
                after_repeat(i)
        out = {**self.describe(), "warmup_frames": warm, "faces_from": faces_from is not None,
               "analysis_seconds": analysis_seconds,
               **{mode: aggregate(rs) for mode, rs in runs.items()}}
        if options.quality:
            out["quality"] = self.quality(clip, workdir / f"out_{tag}_{modes[-1]}{suffix}", log)
        return out

    def quality(self, clip: dict, output: Path, log: Log = _quiet) -> dict[str, Any]:
        """:func:`gpen_video.quality.measure` of a timed run's output against its clip."""
        from gpen_video.quality import MeasureOptions, measure

        log(f"bench: {clip['scene']}: measuring {output.name} against the clip (untimed)")
        options = MeasureOptions(detect=self.template.detect, track=self.template.track,
                                 smooth=self.template.smooth, max_frames=clip["frames"])
        report = measure(Path(clip["clip"]), output, options, detector=self.detector)
        return report.as_dict()


def aggregate(runs: list[dict]) -> dict[str, Any]:
    """Medians and spreads over the repeats of one mode (``runs`` kept as measured)."""
    from gpen_video.bench.measure import summarize
    from gpen_video.pipeline import STAGES

    def col(key: str) -> list[float]:
        return [r[key] for r in runs if r.get(key) is not None]

    out: dict[str, Any] = {"runs": runs}
    for key in ("seconds", "fps", "faces_per_s", "setup_seconds", "stage_sum", "idle_seconds",
                "other_seconds", "latency_p50_ms", "latency_p95_ms", "peak_rss_mib",
                "peak_gpu_mib", "gflop_s", "restore_gflop_s", "load_avg_1min",
                "host_syncs_per_frame", "detect_syncs_per_frame", "device_busy",
                "cpu_ms_per_frame", "cpu_cores_busy"):
        out[key] = summarize(col(key))
    out["stage_seconds"] = {s: summarize([r["stage_seconds"][s] for r in runs]) for s in STAGES}
    out["device_stage_seconds"] = {s: summarize([r["device_stage_seconds"][s] for r in runs
                                                 if s in r.get("device_stage_seconds", {})])
                                   for s in STAGES}
    out["sum_over_wall"] = summarize([r["stage_sum"] / r["seconds"] for r in runs
                                      if r["seconds"] > 0])
    out["frames"] = runs[0]["frames"] if runs else 0
    out["faces"] = runs[0]["faces"] if runs else 0
    return out


# ------------------------------------------------------------------------------ workers


def _worker_main(options: BenchOptions, clips: list[dict], device: str, workdir: Path,
                 modes: tuple[str, ...], barrier: Any, results: Any, index: int,
                 verbose: bool) -> None:
    """Entry point of one worker process (spawned: nothing of the parent's torch state)."""
    import os

    local = device
    if device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        local = "cuda:0"
    try:
        worker = Worker(options.run, local)
        try:
            out = []
            for clip in clips:
                r = worker.bench(clip, options, workdir, modes, barrier=barrier,
                                 log=log_to_stderr if verbose else _quiet)
                r["device"] = device
                out.append(r)
        finally:
            worker.close()
        results.put((index, "ok", out))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        if barrier is not None:
            barrier.abort()
        results.put((index, "error", f"{type(exc).__name__}: {exc}"))


def _run_processes(options: BenchOptions, clips: list[dict], devices: list[str], workdir: Path,
                   modes: tuple[str, ...], log: Log, verbose: bool) -> list[list[dict]]:
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(devices)) if len(devices) > 1 else None
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"gpen-bench-{d}",
                         args=(options, clips, d, workdir, modes, barrier, results, i,
                               verbose))
             for i, d in enumerate(devices)]
    log(f"bench: starting {len(procs)} worker process(es): {', '.join(devices)}")
    for p in procs:
        p.start()
    got: dict[int, Any] = {}
    errors = []
    try:
        while len(got) < len(procs):
            try:
                index, status, payload = results.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [i for i, p in enumerate(procs) if not p.is_alive() and i not in got]
                if dead and results.empty():
                    for i in dead:
                        got[i] = None
                        errors.append(f"worker {devices[i]} exited with code "
                                      f"{procs[i].exitcode} without a result")
                continue
            got[index] = payload if status == "ok" else None
            if status != "ok":
                errors.append(f"worker {devices[index]}: {payload}")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    if errors:
        raise GpenVideoError("bench: " + "; ".join(errors))
    return [got[i] for i in range(len(procs))]


def _combine(per_worker: list[dict]) -> dict[str, Any]:
    """fps of all workers together, per repeat: all frames ÷ the slowest worker's wall."""
    from gpen_video.bench.measure import summarize

    out: dict[str, Any] = {}
    for mode in MODES:
        if not all(mode in w for w in per_worker):
            continue
        n = min(len(w[mode]["runs"]) for w in per_worker)
        totals = []
        for i in range(n):
            runs = [w[mode]["runs"][i] for w in per_worker]
            slowest = max(r["seconds"] for r in runs)
            totals.append(sum(r["frames"] for r in runs) / slowest if slowest > 0 else 0.0)
        out[mode] = summarize(totals)
    return out


# ------------------------------------------------------------------------------ the benchmark


def run_bench(options: BenchOptions, *, restorer: Any = None, detector: Any = None,
              processes: bool | None = None, log: Log | None = None,
              command: str | None = None) -> dict[str, Any]:
    """Time the pipeline as ``options`` says; returns the report (what ``--json`` writes).

    Args:
        restorer, detector: already loaded ones to time instead of building them from
            ``options.run`` (single in-process worker only; tests slow one down this way).
        processes: run the workers as processes (default: only with several devices).
        log: called with each progress line (default: silent).
        command: the command line, recorded in the report.

    Raises:
        UsageError, InputError, WeightsError, BackendUnavailable, …: as ``gpen-video`` does.
    """
    from gpen_video.bench.measure import load_average, machine_info, versions

    check_before_work(options, restorer is None, detector is None)
    if options.mode not in ("both", *MODES):
        raise UsageError(f"--mode {options.mode!r}: choose both, overlap or serial")
    if options.repeats < 1:
        raise UsageError(f"--repeats {options.repeats}: must be at least 1")
    modes = MODES if options.mode == "both" else (options.mode,)
    verbose, log = log is not None, log or _quiet
    devices, device_note = plan_devices(options.gpus, options.run.restore.device)
    if processes is None:
        processes = len(devices) > 1
    if (restorer is not None or detector is not None) and processes:
        raise UsageError("a loaded restorer/detector can only be timed in this process")
    own_dir = options.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="gpen_bench_")) if own_dir else Path(options.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load_before = load_average()
    t0 = time.perf_counter()
    try:
        clips = prepare_clips(options, workdir, log)
        if processes:
            per_device = _run_processes(options, clips, devices, workdir, modes, log, verbose)
        else:
            worker = Worker(options.run, devices[0], restorer, detector)
            try:
                per_device = [[worker.bench(c, options, workdir, modes, log=log)
                               for c in clips]]
            finally:
                worker.close()
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    run = options.run
    report: dict[str, Any] = {
        "benchmark": "gpen-video bench",
        "date": started,
        "command": command or "",
        "machine": machine_info(),
        "versions": versions(run.restore.backend),
        "config": _config(options, modes, devices, device_note, bool(processes)),
        "load_avg_1min": {"before": load_before, "after": load_average()},
        "total_seconds": round(time.perf_counter() - t0, 2),
        "scenes": [],
    }
    for i, clip in enumerate(clips):
        workers = [per_device[d][i] for d in range(len(devices))]
        entry = {k: (str(v) if isinstance(v, Path) else v) for k, v in clip.items()}
        entry["workers"] = workers
        entry["total_fps"] = _combine(workers)
        report["scenes"].append(entry)
    return report


def _config(options: Any, modes: Any, devices: list, device_note: Any,
            processes: bool) -> dict[str, Any]:
    """The report's record of what was timed."""
    run = options.run
    return {
        "model": run.model.name, "random_weights": run.model.random_weights,
        "checkpoint": None if run.model.checkpoint_path is None else str(
            run.model.checkpoint_path),
        "backend": run.restore.backend, "precision": run.restore.precision,
        "compile": run.restore.compile, "tactics": run.restore.tactics,
        "batch": run.restore.batch, "detector": _detector_name(run.detect),
        "detector_batch": run.detect.batch, "detect_mode": run.detect.mode,
        "faces_from": options.faces_from,  # True: runs read an analysis (made untimed)
        "temporal": run.temporal.mode,
        "encode": {k: v for k, v in vars(run.encode).items() if v is not None},
        "frames": options.frames, "repeats": options.repeats, "modes": list(modes),
        "gpus": options.gpus, "devices": devices, "device_note": device_note,
        "workers_as_processes": processes,
    }


def _detector_name(detect: Any) -> str:
    """The RetinaFace network a bench times (``auto`` resolved from the weights file)."""
    from gpen_video.faces.detect import detector_network

    return detector_network(detect) or detect.network


def check_before_work(options: BenchOptions, need_restorer: bool = True,
                      need_detector: bool = True) -> None:
    """What a run checks before it loads a model, done before any clip is synthesised or any
    network exported: the clip and face photo exist, every weights file is there (downloaded
    now when allowed), torch and torchvision fit each other.

    Raises:
        InputError, WeightsError, DownloadError, BackendUnavailable: see
            :mod:`gpen_video.preflight`.
    """
    from gpen_video.preflight import check_inputs_exist, check_torch_stack, check_weights

    check_inputs_exist(*(p for p in (options.clip, options.face) if p is not None))
    check_weights(options.run, need_restorer, need_detector)
    if need_detector:
        check_torch_stack()


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
