"""The naive per-frame face restorer that ``benchmarks/end_to_end.py`` compares against.

What most face-restoration video scripts do: one thread, one frame at a time —

    decode → detect (batch 1) → per-frame 5-point fit (no tracking, no smoothing)
      → crop → restore (batch 1) → full-frame paste (the crop and its mask warped to the whole
      frame, composited over the whole frame) → encode

Same decoder, detector, restorer (the same network object) and encoder as the product, so the
ratio measures the pipeline's design (batching across frames, overlap of stages, paste limited to
each face's region), not a codec or a model. Not part of the product.

    PYTHONPATH=. python benchmarks/naive_pipeline.py in.mp4 out.mp4 --model GPEN-BFR-256 \\
        --random-weights --detector-weights W.pth --frames 0-29
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

STAGES = ("decode", "detect", "align", "restore", "paste", "encode")


def run_naive(input_path: Path, output_path: Path, restorer, detector, encode=None,
              range_options=None, overwrite: bool = True) -> dict:
    """Run the naive loop; returns frames, faces, seconds and per-stage seconds."""
    from gpen_video.compose.mask import template_mask
    from gpen_video.compose.reference import crop_face, to_hwc, to_nchw
    from gpen_video.faces import similarity_to_template
    from gpen_video.media import VideoSink, VideoSource

    size = restorer.spec.size
    mask = template_mask(size)
    seconds = {name: 0.0 for name in STAGES}
    frames = faces = 0
    start = time.perf_counter()
    with VideoSource(input_path, range_options) as source, \
            VideoSink(output_path, source, encode, overwrite=overwrite) as sink:
        h, w = source.height, source.width
        maxval = float(np.iinfo(source.image_dtype).max)
        it = iter(source)
        while True:
            t = time.perf_counter()
            frame = next(it, None)
            seconds["decode"] += time.perf_counter() - t
            if frame is None:
                break
            if not frame.in_range:
                continue
            t = time.perf_counter()
            detections = detector.detect([frame.image])[0]
            seconds["detect"] += time.perf_counter() - t
            image = frame.image.astype(np.float32)
            for det in detections:
                t = time.perf_counter()
                matrix = similarity_to_template(det.landmarks, size)
                crop = crop_face(frame.image, matrix, size)
                seconds["align"] += time.perf_counter() - t
                t = time.perf_counter()
                restored = to_hwc(restorer.restore(to_nchw(crop[None])))[0]
                seconds["restore"] += time.perf_counter() - t
                t = time.perf_counter()
                inv = cv2.invertAffineTransform(matrix)
                back = cv2.warpAffine(restored, inv, (w, h), flags=cv2.INTER_LINEAR)
                alpha = cv2.warpAffine(mask, inv, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
                image = image * (1.0 - alpha) + back * maxval * alpha
                seconds["paste"] += time.perf_counter() - t
                faces += 1
            t = time.perf_counter()
            out = np.clip(np.rint(image), 0, maxval).astype(source.image_dtype)
            sink.write(frame, out)
            seconds["encode"] += time.perf_counter() - t
            frames += 1
        t = time.perf_counter()
    seconds["encode"] += time.perf_counter() - t  # flush and close
    total = time.perf_counter() - start
    return {"frames": frames, "faces": faces, "seconds": total,
            "fps": frames / total if total else 0.0, "stage_seconds": seconds}


def main() -> None:
    from gpen_video.backends import create_restorer
    from gpen_video.faces import FaceDetector
    from gpen_video.options import DetectOptions, ModelOptions, RangeOptions, RestoreOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--model", default="GPEN-BFR-256")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--detector", default="mobile0.25")
    parser.add_argument("--detector-weights", type=Path, default=None)
    parser.add_argument("--frames", default=None, help="A-B")
    args = parser.parse_args()
    rng = None
    if args.frames:
        a, b = (int(x) for x in args.frames.split("-"))
        rng = RangeOptions(start=a, end=b)
    restorer = create_restorer(ModelOptions(name=args.model, random_weights=args.random_weights),
                               RestoreOptions(backend="torch", device="cpu", batch=1)).load()
    detector = FaceDetector(DetectOptions(network=args.detector, weights=args.detector_weights,
                                          device="cpu", batch=1))
    print(run_naive(args.input, args.output, restorer, detector, range_options=rng))


if __name__ == "__main__":
    main()
