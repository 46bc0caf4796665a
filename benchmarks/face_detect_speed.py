"""Detection throughput: frames/s of RetinaFace ResNet-50 and MobileNet-0.25 at 720p and 1080p,
one frame per forward vs batched, through :class:`gpen_video.faces.FaceDetector`.

Frames: the first frame of ``testdata/videos/liveportrait_s18.mp4`` (1280×720, one face) and
the same frame scaled to 1920×1080. Configurations:

* ``product``: the product's default path — the frame downscaled to ``max_side`` 640, no
  refinement (the refinement cost is reported separately, per face);
* ``full``: the network on the full-resolution frame (``max_side`` 0);
* ``refine``: one refinement pass (a 288² crop per face), ms per face, batch 1 vs 8 faces.

MobileNet-0.25 runs with the real weights from ``testdata/weights``. **The ResNet-50 weights are
not available offline here: it runs with random weights of the real architecture**, which gives
its speed (the network cost does not depend on the weights; decode and NMS of random scores are
a negligible part) and nothing else. Times are medians over repeats after a warm-up; CPU only
on this machine (2 cores shared with other jobs), ``torch`` threads as given.

    python benchmarks/face_detect_speed.py [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from gpen_video.bench.records import update_section, write_json  # noqa: E402
from gpen_video.faces.detect import FaceDetector  # noqa: E402
from gpen_video.options import DetectOptions  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"


def first_frame(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise RuntimeError(f"no frame in {path}")


def timed(fn, min_repeats: int, min_seconds: float) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < min_seconds
                                       and len(times) < 20):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def markdown(report: dict) -> str:
    lines = ["## Face detection throughput (`benchmarks/face_detect_speed.py`)", "",
             f"CPU only ({report['machine']}, 2 cores shared with other jobs, torch "
             f"{report['torch']}, {report['torch_threads']} thread(s)); frame: "
             f"{report['frame']}. `product` = the product's path (frame downscaled to 640 px "
             "on its long side), `full` = the network on the full-resolution frame; refinement "
             "and fill fallback off here (refinement cost per face below). Median after "
             "warm-up. **ResNet-50 runs with random weights of the real architecture (its "
             "weights cannot be downloaded here): speed only.** The machine is shared: the "
             "1-minute load average at each row is given; read the figures as lower bounds.",
             "",
             "| network | resolution | input | frames/forward | frames/s | ms/frame | load |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in report["detection"]:
        name = "ResNet-50 (random weights)" if r["network"] == "resnet50" else "MobileNet-0.25"
        inp = "640 px (product)" if r["config"] == "product" else "full resolution"
        lines.append(f"| {name} | {r['resolution']} | {inp} | {r['batch']} | "
                     f"{r['frames_per_s']:.2f} | {r['ms_per_frame']:.0f} | "
                     + (f"{r['load_average_1min']:.1f} |" if "load_average_1min" in r
                        else "– |"))
    lines += ["", "Refinement (MobileNet-0.25, one 288² crop per face and pass; the default "
              "runs 2 passes): " + ", ".join(
                  f"{r['ms_per_face_per_pass']:.1f} ms/face with {r['faces_per_call']} face(s) "
                  "per forward" for r in report["refinement"]) + ".", "",
              ]
    for run in report.get("other_runs", []):
        lines += [f"Another run ({run['description']}), frames/s:", ""]
        lines.append("; ".join(
            f"{'R50' if r['network'] == 'resnet50' else 'mobile'} {r['resolution']} "
            f"{r['config']} ×{r['batch']}: {r['frames_per_s']:.2f}" for r in run["detection"]))
        lines.append("")
    lines += ["The spread between runs (up to ×2) is the shared machine's load, not the code. "
              "Batching frames does not speed up the CPU path: no gain at 640 px, and at full "
              "resolution a batch of 8 is slower per frame (its activations no longer fit the "
              "caches). Batching is there for GPUs, where one small forward per frame leaves the "
              "device idle; no GPU was available to this task, so GPU figures are not given. "
              "The product default (640 px) runs MobileNet-0.25 at ≈ 20–40 frames/s and "
              "ResNet-50 at ≈ 0.5–1.3 frames/s on this CPU, plus ≈ 8–13 ms per face and "
              "refinement pass.", "",
              "Raw data: `benchmarks/results/face_detect_speed.json`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8, help="frames per batched forward")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-markdown", dest="markdown", action="store_false",
                        help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "face_detect_speed.json")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    frame720 = first_frame(TESTDATA / "videos" / "liveportrait_s18.mp4")
    assert frame720.shape[:2] == (720, 1280)
    frame1080 = cv2.resize(frame720, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    rows = []
    for network in ("mobile0.25", "resnet50"):
        base = DetectOptions(network=network, device="cpu", fill_fallback=False, refine=0,
                             weights=weights if network == "mobile0.25" else None)

        def build(options: DetectOptions) -> FaceDetector:
            if network == "resnet50":
                return FaceDetector.with_random_weights(options)
            return FaceDetector(options)

        for label, frame in (("720p", frame720), ("1080p", frame1080)):
            for config, max_side in (("product", 640), ("full", 0)):
                heavy = network == "resnet50" and config == "full"
                for batch in (1, args.batch if not heavy else 4):
                    detector = build(replace(base, max_side=max_side, batch=batch))
                    frames = [frame] * batch
                    seconds = timed(lambda: detector.detect(frames), 1 if heavy else repeats,
                                    0.0 if heavy else 3.0)
                    row = {"network": network, "weights": "real" if network == "mobile0.25"
                           else "random (speed only)", "resolution": label, "config": config,
                           "max_side": max_side, "batch": batch,
                           "frames_per_s": batch / seconds, "ms_per_frame": 1000 * seconds / batch,
                           "load_average_1min": os.getloadavg()[0]}
                    rows.append(row)
                    print(json.dumps(row))
    # refinement: ms per face and pass (mobile, real weights)
    detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu",
                                          refine=0))
    found = detector.detect([frame720])
    assert len(found[0]) == 1, "the test frame has one face"
    refine_rows = []
    for faces in (1, 8):
        frames = [frame720] * faces
        dets = [found[0]] * faces
        seconds = timed(lambda: detector.refine(frames, dets), repeats, 3.0)
        refine_rows.append({"faces_per_call": faces, "ms_per_face_per_pass": 1000 * seconds / faces,
                            "load_average_1min": os.getloadavg()[0]})
        print(json.dumps(refine_rows[-1]))
    report = {
        "benchmark": "face detection throughput",
        "device": "cpu", "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "frame": "liveportrait_s18.mp4 frame 0 (1280x720), and scaled to 1920x1080",
        "note": "resnet50 uses random weights of the real architecture (weights not available "
                "offline): speed only. CPU shared with other jobs.",
        "detection": rows, "refinement": refine_rows,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    if args.markdown:
        update_section(REPO / "benchmarks" / "RESULTS.md", "face_detect_speed", markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
