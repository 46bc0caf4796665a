"""Cost of the faces step per frame: tracked detection against full-frame detection.

    PYTHONPATH=. python benchmarks/detect_cost.py                       # 768x432:1 1080p:1 4k:4
    PYTHONPATH=. python benchmarks/detect_cost.py --scene 1080p:1 --frames 48 --repeats 3

Frames of ``gpen-video bench``'s synthesised scenes (the same face photo, the same motion) are
rendered in memory and pushed through :class:`gpen_video.faces.analyse.FaceAnalyser` — detector
(RetinaFace MobileNet-0.25, local weights, one torch thread), the stream's tracking and
smoothing — in both modes, alternating mode by mode within each repeat so that both see the same
machine load. Reported: the medians of the "detect" and "track" seconds of the stage clock per
frame, faces emitted, and the ratio tracked / full. The ratio is what the machine's load affects
least; ``gpen-video bench --detect tracked|full`` gives the end-to-end share. Writes
``benchmarks/results/detect_cost.json`` and the ``detect_cost`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpen_video.bench.measure import load_average  # noqa: E402
from gpen_video.bench.records import update_section, write_json  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
RESULTS_JSON = REPO / "benchmarks" / "results" / "detect_cost.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
FACE = TESTDATA / "images" / "gpen_ffhq-10_00004.png"


def render(scene_text: str, frames: int) -> list[np.ndarray]:
    from gpen_video.bench.synth import _background, load_face, parse_scene, render_frame

    scene = parse_scene(scene_text)
    photo = load_face(FACE)
    background = _background(scene.width, scene.height, np.random.default_rng(0))
    return [render_frame(photo, background, scene, i) for i in range(frames)]


def run_mode(frames: list[np.ndarray], mode: str, detector, batch: int = 4) -> dict:
    from gpen_video.faces import FaceStream
    from gpen_video.faces.analyse import FaceAnalyser, stream_detect_every
    from gpen_video.options import DetectOptions
    from gpen_video.pipeline import StageClock

    options = DetectOptions(network="mobile0.25", device="cpu", mode=mode,
                            weights=detector.options.weights)
    clock = StageClock()
    stream = FaceStream(fps=25.0, crop_size=256,
                        detect_every=stream_detect_every(options, 25.0))
    analyser = FaceAnalyser(detector, stream, options, fps=25.0, clock=clock)
    faces = 0
    for start in range(0, len(frames), batch):
        faces += sum(len(ff.faces) for ff in analyser.push(frames[start:start + batch]))
    faces += sum(len(ff.faces) for ff in analyser.flush())
    n = len(frames)
    return {"detect_ms": 1000 * clock.seconds["detect"] / n,
            "track_ms": 1000 * clock.seconds["track"] / n, "faces": faces}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", action="append", default=None)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import torch

    from gpen_video.faces.detect import FaceDetector
    from gpen_video.options import DetectOptions

    torch.set_num_threads(1)
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    detector = FaceDetector(DetectOptions(network="mobile0.25", device="cpu", weights=weights))
    loads = [load_average(None, float("nan"))]
    rows = []
    for scene in args.scene or ["768x432:1", "1080p:1", "4k:4"]:
        frames = render(scene, args.frames)
        runs: dict[str, list[dict]] = {"tracked": [], "full": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(run_mode(frames, mode, detector))
        row: dict = {"scene": scene, "frames": args.frames}
        for mode, got in runs.items():
            row[mode] = {key: statistics.median(r[key] for r in got) for key in got[0]}
        row["detect_ratio"] = row["tracked"]["detect_ms"] / row["full"]["detect_ms"]
        rows.append(row)
        print(row, flush=True)
        loads.append(load_average(None, float("nan")))
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, 2 cores shared, "
                         "torch threads 1", "loads": loads, "scenes": rows}
    write_json(RESULTS_JSON, report)
    update_section(RESULTS_MD, "detect_cost", markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    loads = ", ".join(f"{x:.1f}" for x in report["loads"])
    lines = ["## Faces step per frame: tracked vs full-frame detection "
             "(`benchmarks/detect_cost.py`)", "",
             f"{report['date']}, {report['machine']}; 1-min load during the run: {loads}. "
             "Synthesised bench scenes rendered in memory, RetinaFace MobileNet-0.25, detection "
             "batch 4, medians of the stage clock over the repeats (modes alternated).", "",
             "| scene | frames | detect ms/frame tracked | detect ms/frame full | ratio | "
             "track ms/frame tracked / full | face instances tracked / full |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["scenes"]:
        t, f = row["tracked"], row["full"]
        lines.append(f"| {row['scene']} | {row['frames']} | {t['detect_ms']:.1f} | "
                     f"{f['detect_ms']:.1f} | {row['detect_ratio']:.2f} | {t['track_ms']:.1f} / "
                     f"{f['track_ms']:.1f} | {t['faces']:.0f} / {f['faces']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
