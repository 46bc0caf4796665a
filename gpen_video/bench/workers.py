"""``gpen-video bench --workers N[,M…]``: the whole job's fps with N pipeline processes.

Each timed run is the user's command, ``gpen-video CLIP OUT --workers N`` (the clip's first
``frames`` frames), in a fresh subprocess, timed from its start to its exit: process start, model
loading in every worker, rendering, the stitch. That is what ``--workers`` changes; the per-stage
breakdown of one process is ``gpen-video bench`` without ``--workers``. Worker counts are
interleaved repeat by repeat so that they share the machine's conditions (load is recorded).

Reported per count: median wall seconds (min–max), total fps (frames ÷ wall), fps after load
(frames ÷ the time the busiest worker spent rendering, from the command's closing summary: on a
short clip process start and model loading dominate the wall, and a long clip approaches this
rate), the CPUs kept busy, and the GPU busy fraction when the job runs on CUDA.

GPU busy fraction: :func:`gpu_busy_sampler` samples NVML's utilisation
(``torch.cuda.utilization``, needs ``pynvml``) during the run — the fraction of
sampling periods in which a kernel ran, an upper bound of the true busy time. A CUDA-event
measurement of the pipeline's own device time can replace it there (one function).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpen_video.bench.report import number
from gpen_video.errors import UsageError
from gpen_video.options import BenchOptions, RunOptions

Log = Callable[[str], None]


def parse_counts(text: str) -> list[int]:
    """``"1,2"`` → [1, 2]. Raises UsageError unless every item is a positive count."""
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise UsageError(f"--workers {text!r}: worker counts, e.g. 2 or 1,2")
    return counts


def gpu_busy_sampler(device: str) -> tuple[Callable[[], None], Callable[[], float | None]]:
    """(start, stop) of a GPU utilisation sampler; ``stop`` returns the mean busy fraction, or
    None where it cannot be measured (no CUDA, no NVML)."""
    try:
        import torch

        if device == "cpu" or not torch.cuda.is_available():
            raise RuntimeError
        torch.cuda.utilization(0)  # needs pynvml
    except Exception:  # noqa: BLE001 - not measurable here
        return (lambda: None), (lambda: None)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append(sum(torch.cuda.utilization(i) for i in range(
                torch.cuda.device_count())) / (100.0 * torch.cuda.device_count()))

    thread = threading.Thread(target=sample, daemon=True)

    def finish() -> float | None:
        stop.set()
        thread.join()
        return statistics.fmean(samples) if samples else None

    return thread.start, finish


def command_args(run: RunOptions, clip: Path, output: Path, frames: int) -> list[str]:
    """``gpen-video`` arguments rendering the first ``frames`` frames of ``clip`` as ``run``."""
    args = [str(clip), str(output), "-y", "--frames", f"0-{frames - 1}", "--progress", "json",
            "--model", str(run.model.checkpoint_path or run.model.name),
            "--backend", run.restore.backend, "--device", run.restore.device,
            "--precision", run.restore.precision, "--batch", str(run.restore.batch),
            "--compile", run.restore.compile, "--tactics", run.restore.tactics,
            "--detector", run.detect.network, "--detect", run.detect.mode,
            "--temporal", run.temporal.mode]
    if run.model.random_weights:
        args.append("--random-weights")
    if not run.model.download:
        args.append("--no-download")
    if run.detect.weights is not None:
        args += ["--detector-weights", str(run.detect.weights)]
    for flag, value in (("--codec", run.encode.codec), ("--crf", run.encode.crf),
                        ("--preset", run.encode.preset)):
        if value is not None:
            args += [flag, str(value)]
    return args


def _time_command(args: list[str], workers: int, device: str) -> dict[str, Any]:
    start, finish = gpu_busy_sampler(device)
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0, children0 = time.perf_counter(), _children_cpu_seconds()
    start()
    done = subprocess.run([sys.executable, "-m", "gpen_video", *args, "--workers",
                           str(workers)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    cpu = _children_cpu_seconds() - children0
    busy = finish()
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UsageError(f"bench: gpen-video --workers {workers} exited {done.returncode}: "
                         f"{tail}")
    summary = _summary_event(done.stdout)
    # the same keys whether the command ran one process or several (pipeline.Summary's)
    # one process: its frames' wall time; several: the busiest worker's chunks (both without
    # process start and model loading)
    rendering = summary.get("busiest_worker_seconds", summary.get("seconds"))
    return {"seconds": seconds, "gpu_busy_fraction": busy, "cpu_seconds": cpu,
            "rendering_seconds": rendering,
            "host_syncs": summary.get("host_syncs"),
            "host_syncs_per_frame": summary.get("host_syncs_per_frame"),
            "detect_syncs_per_frame": summary.get("detect_syncs_per_frame")}


def _after_load(frames: int, runs: list[dict[str, Any]]) -> float | None:
    """Frames ÷ the median rendering seconds (None when the command did not report them)."""
    seconds = [r["rendering_seconds"] for r in runs if r.get("rendering_seconds")]
    return round(frames / statistics.median(seconds), 3) if seconds else None


def _children_cpu_seconds() -> float:
    """User + system CPU time of the finished child processes (and of the children they waited
    for: the command's workers)."""
    t = os.times()
    return t.children_user + t.children_system


def _summary_event(stdout: str) -> dict[str, Any]:
    """The closing ``{"event": "summary", …}`` line of a ``--progress json`` run ({} if none)."""
    import json

    for line in reversed(stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "summary":
            return event
    return {}


def bench_workers(options: BenchOptions, counts: list[int], workdir: Path,
                  log: Log) -> list[dict[str, Any]]:
    """Per scene: per worker count, the timed runs and their medians (module docstring)."""
    from gpen_video.bench.core import prepare_clips
    from gpen_video.bench.measure import load_average

    scenes = []
    for clip in prepare_clips(options, workdir, log):
        frames = int(clip["frames"])
        runs: dict[int, list[dict]] = {n: [] for n in counts}
        for repeat in range(options.repeats):
            for n in counts:
                out = workdir / f"workers{n}_{clip['scene'].replace(':', '_')}.mkv"
                args = command_args(options.run, Path(clip["clip"]), out, frames)
                load = load_average()
                result = _time_command(args, n, options.run.restore.device)
                result["load_avg_1min_before"] = load
                runs[n].append(result)
                log(f"bench: {clip['description']} --workers {n} repeat {repeat + 1}: "
                    f"{result['seconds']:.1f}s ({frames / result['seconds']:.2f} fps)")
        rows = []
        for n in counts:
            seconds = [r["seconds"] for r in runs[n]]
            busy = [r["gpu_busy_fraction"] for r in runs[n] if r["gpu_busy_fraction"] is not None]
            median = statistics.median(seconds)
            rows.append({"workers": n, "seconds_median": round(median, 3),
                         "seconds_min": round(min(seconds), 3),
                         "seconds_max": round(max(seconds), 3),
                         "total_fps": round(frames / median, 3),
                         "fps_after_load": _after_load(frames, runs[n]),
                         "cpu_cores_busy": round(statistics.median(
                             r["cpu_seconds"] / r["seconds"] for r in runs[n]), 2),
                         "gpu_busy_fraction": round(statistics.median(busy), 3) if busy
                         else None,
                         "host_syncs_per_frame": runs[n][-1].get("host_syncs_per_frame"),
                         "detect_syncs_per_frame": runs[n][-1].get("detect_syncs_per_frame"),
                         "runs": runs[n]})
        base = rows[0]["total_fps"]
        for row in rows:
            row["speedup_vs_first"] = round(row["total_fps"] / base, 3) if base else None
        scenes.append({"scene": clip["scene"], "description": clip["description"],
                       "frames": frames, "rows": rows})
    return scenes


def format_workers(report: dict[str, Any]) -> str:
    """The report as a short table."""
    lines = [f"gpen-video bench --workers: {report['config']}",
             f"load (1 min) before/after: {report['load_avg_1min']}"]
    for scene in report["scenes"]:
        # GPU busy and host syncs only where a GPU ran (on a CPU there is no device to wait for)
        gpu = any(r.get("gpu_busy_fraction") is not None for r in scene["rows"])
        lines.append(f"  {scene['description']}, {scene['frames']} frames:")
        lines.append("    workers   wall s (min–max)        total fps   fps after load ²   "
                     "vs first" + ("   GPU busy" if gpu else "") + "   CPUs busy ¹"
                     + ("   host syncs/frame (restore+compose, detect)" if gpu else ""))
        for r in scene["rows"]:
            busy = f"   {number(r['gpu_busy_fraction'], '.0%'):>8}" if gpu else ""
            syncs = (r.get("host_syncs_per_frame"), r.get("detect_syncs_per_frame"))
            sync_text = ("—" if None in syncs else f"{syncs[0]:.2f}, {syncs[1]:.2f}")
            lines.append(f"    {r['workers']:>7}   {r['seconds_median']:>7.1f} "
                         f"({r['seconds_min']:.1f}–{r['seconds_max']:.1f})"
                         f"{r['total_fps']:>14.3f}"
                         f"   {number(r.get('fps_after_load'), '.2f'):>16}   "
                         f"{r['speedup_vs_first']:>7.2f}×{busy}"
                         f"   {number(r.get('cpu_cores_busy'), '.2f'):>11}"
                         + (f"   {sync_text}" if gpu else ""))
    lines.append("  ¹ CPU time of the command and its workers ÷ wall time (process start and "
                 "model loading included)")
    lines.append("  ² frames ÷ the time the busiest worker spent rendering its chunks (one "
                 "process: its frames' wall time); process start, model loading and the stitch "
                 "left out — the rate a long clip approaches, where total fps is this clip's")
    return "\n".join(lines)
