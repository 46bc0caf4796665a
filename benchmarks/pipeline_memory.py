"""Peak memory of the pipeline against clip length: it must be bounded by the look-ahead window
and the queues, not by the clip.

Builds two clips from the real 480×480 clip ``liveportrait_d18.mp4`` (its frames looped, H.264
ultrafast), 600 and 2,400 frames, and runs the real pipeline on each in a fresh process with the
identity restorer (no network: its memory does not depend on clip length either, and it keeps the
run short on a CPU) and the real RetinaFace MobileNet-0.25 detector. Reports each run's peak RSS.

    python benchmarks/pipeline_memory.py --workdir /tmp/mem
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from gpen_video.bench import records

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"
RESULT_JSON = REPO / "benchmarks" / "results" / "pipeline_memory.json"


def make_clip(path: Path, frames: int) -> None:
    import av

    with av.open(str(TESTDATA / "videos" / "liveportrait_d18.mp4")) as src:
        images = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 480, 480, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            k = i % (2 * len(images))  # forwards then backwards: no jump, no cut
            image = images[k] if k < len(images) else images[2 * len(images) - 1 - k]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def run_one(src: Path, dst: Path) -> dict:
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    cmd = [sys.executable, "-m", "gpen_video", str(src), str(dst), "-y", "--backend", "identity",
           "--model", "GPEN-BFR-256", "--detector", "mobile0.25", "--detector-weights",
           str(weights), "--progress", "none"]
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, cwd=REPO)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"clip": src.name, "peak_rss_mib": round(peak_kib / 1024, 1),
            "children_peak_before_mib": round(before / 1024, 1),
            "wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gpen-video-mem"))
    parser.add_argument("--frames", type=int, nargs="+", default=[600, 2400])
    parser.add_argument("--from-json", action="store_true",
                        help="only re-render the RESULTS.md section from the saved JSON")
    args = parser.parse_args()
    if args.from_json:
        render(json.loads(RESULT_JSON.read_text()))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(args.frames):  # shortest first: ru_maxrss of children only ever grows
        clip = args.workdir / f"loop_{n}.mp4"
        if not clip.exists():
            make_clip(clip, n)
        row = run_one(clip, args.workdir / f"out_{n}.mp4")
        row["frames"] = n
        row["load_avg_1min"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(row, flush=True)
    result = {"benchmark": "pipeline_memory", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": "python benchmarks/pipeline_memory.py --workdir " + str(args.workdir),
              "results": rows}
    records.write_json(RESULT_JSON, result)
    render(result)


def render(result: dict) -> None:
    """Write this benchmark's section of benchmarks/RESULTS.md from its JSON."""
    rows = "\n".join(f"| {x['frames']} | {x['wall_s']} | {x['peak_rss_mib']} | {x['load_avg_1min']} |"
                     for x in result["results"])
    peaks = [x["peak_rss_mib"] for x in result["results"]]
    frames = [x["frames"] for x in result["results"]]
    growth = 100.0 * (peaks[-1] / peaks[0] - 1.0)
    block = f"""## Pipeline peak memory vs clip length (`benchmarks/pipeline_memory.py`)

Machine: AMD EPYC, 2 logical CPUs, 24 GiB, no GPU. Date: {result['date']}.
Command: `{result['command']}`.

The real pipeline (`python -m gpen_video … --backend identity --detector mobile0.25`) in a fresh
process per clip, on clips made by looping the real 480×480 clip `liveportrait_d18.mp4` (one face,
H.264). Identity restorer: the network's memory does not depend on clip length, and it keeps the
run short on this CPU. Peak RSS is the child process's `ru_maxrss` (shortest clip first, so the
longer run's figure is its own peak only if it is higher).

| frames | wall (s) | peak RSS (MiB) | load |
| ---: | ---: | ---: | ---: |
{rows}

{frames[-1] / frames[0]:.0f}× the frames, {growth:+.1f} % peak memory: memory is bounded by the
look-ahead window and the queues, not by the clip.

Raw data: `benchmarks/results/pipeline_memory.json`."""
    records.update_section(REPO / "benchmarks" / "RESULTS.md", "pipeline_memory", block)


if __name__ == "__main__":
    main()
