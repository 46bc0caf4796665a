"""How far a chunk's face alignment is from a single run's, against the warm-up it decodes.

A chunked render (``gpen-video --workers``, ``gpen-video farm``) starts each chunk's tracker and
alignment smoother cold, ``lead`` frames before the chunk. This measures what that costs on a
real clip: RetinaFace (MobileNet-0.25, the shared weights) runs once over the clip in detector
batches aligned to frame numbers (as the pipeline runs it, so a chunk sees the same detections);
then :class:`gpen_video.faces.FaceStream` runs over the whole clip and over each chunk's frames
``start − lead … end + tail``; for every output frame of the chunk the error is the largest
distance, over the crop's four corners, between where the chunk's and the single run's
frame → crop matrices put them (crop pixels, 256 crop). Also reported: frames where one run has a
face and the other not, and the chunk's first frame's error (the border); and for the first
chunk, the error at its end against the look-ahead (``tail``) it decodes past its last frame.

    python benchmarks/chunk_convergence.py                 # s18, chunks of 141, leads 0…150
    python benchmarks/chunk_convergence.py CLIP --chunk 60 --leads 0,30,60,120

Writes ``benchmarks/results/chunk_convergence.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gpen_video.faces import FaceDetector, FaceStream  # noqa: E402
from gpen_video.farm.plan import plan_chunks  # noqa: E402
from gpen_video.farm.warmup import chunk_margins  # noqa: E402
from gpen_video.media import VideoSource  # noqa: E402
from gpen_video.options import DetectOptions, RunOptions  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
CROP = 256
CORNERS = np.array([[0, 0, 1], [CROP, 0, 1], [0, CROP, 1], [CROP, CROP, 1]], float).T


def detections(clip: Path, batch: int) -> tuple[list, float]:
    """Every frame's detections (batches aligned to frame numbers) and the clip's fps."""
    import torch

    torch.set_num_threads(1)
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu",
                                          batch=batch))
    out: list = []
    todo: list = []
    with VideoSource(clip) as src:
        fps = float(src.fps)
        for frame in src:
            todo.append(frame.image)
            if len(todo) == batch:
                out.extend(detector.detect(todo))
                todo = []
    if todo:
        out.extend(detector.detect(todo))
    return out, fps


def stream_faces(dets: list, fps: float, first: int, last: int) -> dict[int, np.ndarray]:
    """Frame number → 2×3 matrix of its first face, for frames ``first … last`` fed alone."""
    run = RunOptions(input=Path("-"), output=Path("-"))
    stream = FaceStream(run.track, run.smooth, fps=fps, crop_size=CROP,
                        ramp_frames=run.blend.ramp_frames)
    out: dict[int, np.ndarray] = {}

    def take(ready: list) -> None:
        for ff in ready:
            if ff.faces:
                out[first + ff.frame_index] = np.asarray(ff.faces[0].matrix)

    for i in range(first, last + 1):
        take(stream.push(dets[i], None, cut=False))
    take(stream.flush())
    return out


def corner_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest corner displacement (crop px) between two frame → crop matrices."""
    ia = np.linalg.inv(np.vstack([a, [0, 0, 1]]))
    frame_pts = ia @ CORNERS
    return float(np.abs((b @ frame_pts) - (a @ frame_pts)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path,
                        default=TESTDATA / "videos" / "liveportrait_s18.mp4")
    parser.add_argument("--chunk", type=int, default=141)
    parser.add_argument("--leads", default="0,8,16,32,48,64,96")
    parser.add_argument("--tails", default="0,4,8,15",
                        help="look-aheads past the first chunk's end to measure it with")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "chunk_convergence.json")
    args = parser.parse_args()
    t0 = time.perf_counter()
    dets, fps = detections(args.clip, 4)
    n = len(dets)
    single = stream_faces(dets, fps, 0, n - 1)
    margins = chunk_margins(RunOptions(input=args.clip, output=Path("-")), fps)
    rows = []
    for lead in [int(x) for x in args.leads.split(",")]:
        for chunk in plan_chunks(0, n - 1, args.chunk)[1:]:
            first = max(0, chunk.start - lead)
            last = min(n - 1, chunk.end + margins.tail)
            faces = stream_faces(dets, fps, first, last)
            errs, presence = [], 0
            for f in range(chunk.start, chunk.end + 1):
                if (f in faces) != (f in single):
                    presence += 1
                elif f in faces:
                    errs.append(corner_error(single[f], faces[f]))
            rows.append({"lead": lead, "chunk": chunk.frames, "max_px": max(errs, default=0.0),
                         "first_px": errs[0] if errs else 0.0,
                         "frames_over_0.01px": sum(e > 0.01 for e in errs),
                         "presence_mismatch": presence})
            print(json.dumps(rows[-1]), flush=True)
    tail_rows = []
    for tail in [int(x) for x in args.tails.split(",")]:
        chunk = plan_chunks(0, n - 1, args.chunk)[0]
        faces = stream_faces(dets, fps, 0, min(n - 1, chunk.end + tail))
        errs = [corner_error(single[f], faces[f]) for f in range(chunk.start, chunk.end + 1)
                if f in faces and f in single]
        tail_rows.append({"tail": tail, "chunk": chunk.frames, "max_px": max(errs, default=0.0),
                          "last_px": errs[-1] if errs else 0.0,
                          "frames_over_0.01px": sum(e > 0.01 for e in errs)})
        print(json.dumps(tail_rows[-1]), flush=True)
    report = {"clip": args.clip.name, "frames": n, "fps": fps, "crop": CROP,
              "tail": margins.tail, "rule_lead": margins.lead, "rows": rows,
              "tail_rows": tail_rows,
              "machine": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                  time.gmtime()),
              "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
