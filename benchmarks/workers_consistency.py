"""``gpen-video IN OUT --workers N`` against the single run of the same job, frame by frame.

The single run is rendered in this process the way ``--workers 1`` renders it (the run command's
options, :func:`gpen_video.pipeline.run`, its observer giving each frame's face footprints); the
chunked one by ``python -m gpen_video … --workers N`` in a subprocess. Both with one torch thread
per process (``torch.set_num_threads(1)`` here, ``OMP_NUM_THREADS=1`` for the subprocess, which
its workers inherit). Random-weight GPEN-256 on the torch CPU backend: its output changes a lot
with any change of alignment, so it magnifies what chunking changes. Lossless output (FFV1
``bgr0``) so that pixels can be compared.

Reports per-frame PSNR (whole frame), the largest difference outside the faces, frame count,
timestamps, audio packets, and at each chunk border how much the frame-to-frame change differs
from the single run's ("step"), against the largest such difference elsewhere.

    python benchmarks/workers_consistency.py               # d18, 2 workers
    python benchmarks/workers_consistency.py CLIP --workers 3

Writes ``benchmarks/results/workers_consistency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.media_helpers import stream_packets  # noqa: E402
from tests.workers_helpers import compare, single_run  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"


def job_args(clip: Path, output: Path) -> list[str]:
    """The job both renders run: random-weight GPEN-256, torch on the CPU, real detector."""
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    return [str(clip), str(output), "-y", "--model", "GPEN-BFR-256", "--random-weights",
            "--backend", "torch", "--device", "cpu", "--detector", "mobile0.25",
            "--detector-weights", str(weights), "--codec", "ffv1", "--pix-fmt", "bgr0",
            "--progress", "none"]


def chunked_run(args: list[str], workers: int) -> float:
    """``python -m gpen_video ARGS --workers N`` with one torch thread per process; seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gpen_video", *args, "--workers", str(workers)],
                   cwd=REPO, env=env, check=True)
    return time.perf_counter() - t0


def borders(frames: int, workers: int) -> list[int]:
    """Chunk starts of a ``--workers N`` render of ``frames`` frames (one chunk per worker)."""
    from gpen_video.farm.plan import plan_chunks

    size = -(-frames // workers)
    return [c.start for c in plan_chunks(0, frames - 1, size)[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path,
                        default=TESTDATA / "videos" / "liveportrait_d18.mp4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gpen-workers-consistency"))
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "workers_consistency.json")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    single, chunked = args.workdir / "single.mkv", args.workdir / "chunked.mkv"
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    faces = single_run(job_args(args.clip, single))
    t_single = time.perf_counter() - t0
    t_chunked = chunked_run(job_args(args.clip, chunked), args.workers)
    result = compare(single, chunked, faces)
    report = record_comparison(args.out, args.clip, args.workers, result, single, chunked,
                               {"seconds_single": round(t_single, 1),
                                "seconds_chunked": round(t_chunked, 1),
                                "load_before": [round(x, 2) for x in load_before]})
    print(json.dumps({k: v for k, v in report.items() if k != "psnr_per_frame"}, default=float))


def record_comparison(out: Path, clip: Path, workers: int, result, single: Path, chunked: Path,
                      extra: dict | None = None) -> dict:
    """Write the comparison of ``single`` and ``chunked`` (``tests/workers_helpers.compare``)
    as JSON to ``out``; returns it."""
    audio = [stream_packets(p, "audio") for p in (single, chunked)]
    report = {
        "clip": clip.name, "workers": workers,
        **result.summary(borders(result.frames, workers)),
        "pts_equal": result.pts_single == result.pts_chunked,
        "audio_packets": [len(a[0]) if a else 0 for a in audio],
        "audio_equal": audio[0] == audio[1],
        "psnr_per_frame": [None if p == float("inf") else round(p, 2) for p in result.psnr],
        "torch_threads_per_process": 1, **(extra or {}),
        "load_after": [round(x, 2) for x in os.getloadavg()], "machine": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return report

if __name__ == "__main__":
    main()
