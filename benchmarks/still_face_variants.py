"""Alignment smoothing through a restorer on still-face clip variants: does ``--smooth rts``
halve the restorer's flicker against ``--smooth none``, by each of two measures?

    PYTHONPATH=. python benchmarks/still_face_variants.py                 # the ten variants
    PYTHONPATH=. python benchmarks/still_face_variants.py '[120, 1.5, "0"]'  # face px, σ, CRF

Each variant: one still face (the test's photo, ``face px`` wide, 3° tilt) in a 288×320 frame,
30 frames with fresh Gaussian sensor noise σ, through intra-only H.264 (CRF 18 4:2:0, or CRF 0
4:4:4 = lossless). The real MobileNet detector finds the landmarks; the tracking stream gives
the matrices of ``rts`` and ``none``; the "still crop" is one constant matrix (the mean of the
RTS matrices: the best any alignment smoother can do). Flicker = the mean absolute
frame-to-frame change of random-weight GPEN-BFR-256's output in the face core, in crop space
(``tests/test_smooth_flicker.py``'s proxy). End to end: the clip through the pipeline
(``--temporal off``, the same random GPEN-256, PNG output) with each method, and
``gpen-video measure``'s warping error of the output inside the face (mean over frames and the
median of the per-frame values). Prints one JSON line per variant; the table is in
``benchmarks/RESULTS.md`` ("Alignment smoothing and restorer flicker").
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpen_video.faces import FaceDetector  # noqa: E402
from gpen_video.options import DetectOptions  # noqa: E402
from tests.geometry import face_photo  # noqa: E402
from tests.pipeline_helpers import face_scene, read_frames, write_clip  # noqa: E402
from tests.test_smooth_flicker import (_network_flicker, restored_and_measured,  # noqa: E402
                                       stream_matrices)

TESTDATA = REPO.parent / "shared" / "testdata"
FRAMES = 30
VARIANTS = [(176, 3.0, "18"), (176, 1.0, "18"), (120, 3.0, "18"), (96, 3.0, "18"),
            (176, 3.0, "0"), (140, 2.0, "0"), (120, 2.0, "0"), (120, 1.5, "0"), (120, 1.0, "0"),
            (100, 2.0, "0")]


def clip_path(size: int, sigma: float, crf: str, folder: Path) -> Path:
    return folder / f"still_{size}_{sigma}_{crf}.mp4"


def clip_frames(size: int, sigma: float, crf: str, folder: Path) -> list[np.ndarray]:
    still = face_scene(face_photo(TESTDATA), size, 3.0, (288, 320), (160.0, 140.0))
    rng = np.random.default_rng(0)
    frames = [np.clip(still + rng.normal(0, sigma, still.shape), 0, 255).astype(np.uint8)
              for _ in range(FRAMES)]
    path = clip_path(size, sigma, crf, folder)
    write_clip(path, frames, codec="libx264", pix_fmt="yuv420p" if crf != "0" else "yuv444p",
               options={"crf": crf, "preset": "veryfast", "g": "1"})
    return [f.image for f in read_frames(path)]


def variant(detector: FaceDetector, size: int, sigma: float, crf: str, folder: Path) -> dict:
    frames = clip_frames(size, sigma, crf, folder)
    dets = [detector.detect([f])[0] for f in frames]

    rts, none = stream_matrices(frames, dets, "rts"), stream_matrices(frames, dets, "none")
    still = [np.mean(rts, axis=0)] * len(frames)
    f_rts, f_none, f_still = (_network_flicker(frames, m) for m in (rts, none, still))
    warp = {m: output_warping_error(detector, clip_path(size, sigma, crf, folder), m)
            for m in ("none", "rts")}
    return {"face_px": size, "sigma": sigma, "crf": crf, "none": round(f_none, 3),
            "rts": round(f_rts, 3), "still": round(f_still, 3),
            "rts_ratio": round(f_rts / f_none, 3), "floor_ratio": round(f_still / f_none, 3),
            "warp_none": warp["none"][0], "warp_rts": warp["rts"][0],
            "warp_ratio": round(warp["rts"][0] / warp["none"][0], 3),
            "warp_median_ratio": round(warp["rts"][1] / warp["none"][1], 3)}


def output_warping_error(detector: FaceDetector, clip: Path, method: str) -> tuple[float, float]:
    """(mean, median) over frames of the output's warping error inside the face (×1e6, [0, 1]
    RGB scale) after a run with ``--smooth method --temporal off``."""
    _, report = restored_and_measured(TESTDATA, clip, clip.parent, method, detector)
    values = [v for c in report.curves for v in c.warp_result if v is not None]
    return round(report.clip.warp_result * 1e6, 1), round(float(np.median(values)) * 1e6, 1)


def main(argv: list[str]) -> int:
    variants = [tuple(json.loads(a)) for a in argv] or VARIANTS
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu"))
    with tempfile.TemporaryDirectory() as folder:
        for size, sigma, crf in variants:
            print(json.dumps(variant(detector, size, sigma, crf, Path(folder))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
