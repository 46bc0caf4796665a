"""B1 (``face_stability.py``) for tracked detection with other window sizes.

    PYTHONPATH=. python benchmarks/window_sizes.py 640x360 0.07 150    # B1's own clip size
    PYTHONPATH=. python benchmarks/window_sizes.py 1920x1080 0.1 80    # a 192 px IOD close-up
    PYTHONPATH=. python benchmarks/window_sizes.py --cost              # ms per face and round
    PYTHONPATH=. python benchmarks/window_sizes.py --sweep benchmarks/results/window_sizes.json

Prints, per scenario, the full-frame default's RMSE and per variant (tracked RMSE px, ratio to
the default, jitter px, seconds). Numbers: RESULTS.md, "Tracked detection: window sizes".
"""
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

torch.set_num_threads(1)
import face_stability as B  # noqa: E402

td = B.TESTDATA
# DetectOptions overrides (first window + refinement windows); the product's default is
# 224+2x192 at the 288 template ("sNNN:" variants put the face at another template size)
VARIANTS = {"224+2x160": {"window_size": 224, "window_refine_size": 160},
            "224+2x176": {"window_size": 224, "window_refine_size": 176},
            "224+2x224": {"window_size": 224, "window_refine_size": 224},
            "224+3x160": {"window_size": 224, "refine": 3, "window_refine_size": 160},
            "224+1x192": {"window_size": 224, "refine": 1, "window_refine_size": 192},
            "224+1x224": {"window_size": 224, "refine": 1, "window_refine_size": 224},
            "224+1x256": {"window_size": 224, "refine": 1, "window_refine_size": 256},
            "288+2x160": {"window_size": 288, "window_refine_size": 160},
            "192+2x192": {"window_size": 192, "window_refine_size": 192},
            "224+2x192": {"window_size": 224, "window_refine_size": 192},
            "s256:192+2x160": {"refine_size": 256, "window_size": 192, "window_refine_size": 160},
            "s256:224+2x160": {"refine_size": 256, "window_size": 224, "window_refine_size": 160},
            "s256:160+2x160": {"refine_size": 256, "window_size": 160, "window_refine_size": 160},
            "s256:192+1x160": {"refine_size": 256, "window_size": 192, "refine": 1,
                               "window_refine_size": 160},
            "s224:160+2x128": {"refine_size": 224, "window_size": 160, "window_refine_size": 128},
            "s224:192+2x160": {"refine_size": 224, "window_size": 192, "window_refine_size": 160},
            "s224:224+2x160": {"refine_size": 224, "window_size": 224, "window_refine_size": 160},
            "s240:192+2x160": {"refine_size": 240, "window_size": 192, "window_refine_size": 160},
            "s272:224+2x192": {"refine_size": 272, "window_size": 224, "window_refine_size": 192}}


def round_cost(threads: int = 2) -> None:
    """Milliseconds per face of one round (all passes) per variant: four frames of a 1080p
    clip, one 400 px face each, medians of 15 rounds."""
    import cv2
    import numpy as np

    from gpen_video.faces.analyse import FIRST_GATE
    from gpen_video.faces.detect import FaceDetector
    from gpen_video.faces.window_detect import WindowDetector, WindowJob
    from gpen_video.options import DetectOptions

    torch.set_num_threads(threads)
    photo = cv2.cvtColor(cv2.imread(str(td / "images" / "gpen_ffhq-10_00004.png")),
                         cv2.COLOR_BGR2RGB)
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[300:700, 700:1100] = cv2.resize(photo, (400, 400), interpolation=cv2.INTER_AREA)
    options = DetectOptions(network="mobile0.25", device="cpu", weights=td / B.WEIGHTS)
    detector = FaceDetector(options)
    landmarks = detector.detect([frame])[0][0].landmarks
    for variant, overrides in VARIANTS.items():
        o = replace(options, **overrides)
        crops = (o.window_size,) + (o.window_refine_size,) * o.refine
        windows = WindowDetector(detector, o.refine_size, crops, first_gate=FIRST_GATE)
        jobs = [WindowJob(i, landmarks) for i in range(4)]
        windows.run([frame] * 4, jobs, [])
        times = []
        for _ in range(15):
            t = time.perf_counter()
            windows.run([frame] * 4, jobs, [])
            times.append(time.perf_counter() - t)
        print(f"{variant}: {np.median(times) * 1e3 / 4:.1f} ms per face", flush=True)


SWEEP_IODS = (0.035, 0.05, 0.07, 0.08, 0.1, 0.12, 0.14, 0.17, 0.2)  # × 1920: 67–384 px


def sweep(out: Path, iods: Sequence[float] = SWEEP_IODS, frames: int = 80) -> None:
    """The default (tracked, 224+2×192) against full detection on B1's three clips at 1920×1080
    for faces of 67–384 px between the eyes: RMSE ratio, jitter and median per-frame error
    (512-crop px) per clip, as JSON (run it on two checkouts to compare them). ``iods``:
    fractions of the frame's width."""
    import json

    import numpy as np

    photos = [B.load_photo(td / p) for p in B.PHOTOS]
    rows = {}
    for iod in iods:
        for name in ("smooth", "jerky", "cut"):
            clip = B.make_clip(name, (1920, 1080), frames, 25.0, iod * 1920, True, photos)
            plain, dets = B.detector_landmarks(clip, td / B.WEIGHTS)
            full = B.errors(clip, B.method_matrices(clip, plain, dets, "default"))
            e = B.errors(clip, B.tracked_matrices(clip, td / B.WEIGHTS))
            ratio = e["rmse_px"] / full["rmse_px"]
            rows[f"{iod * 1920:.0f}px:{name}"] = {
                "full_rmse": full["rmse_px"], "rmse": e["rmse_px"], "ratio": ratio,
                "jitter": e["jitter_px"], "median": float(np.nanmedian(e["per_frame"]))}
            print(f"{iod * 1920:.0f} px {name}: ratio {ratio:.2f} jitter {e['jitter_px']:.3f}",
                  flush=True)
    out.write_text(json.dumps({"frames": frames, "size": [1920, 1080], "rows": rows}, indent=1))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--cost"]:
        round_cost()
        return
    if argv[:1] == ["--sweep"]:
        sweep(Path(argv[1]), *([[float(x) for x in argv[2].split(",")]] if argv[2:] else []))
        return
    size = tuple(int(x) for x in argv[0].split("x"))
    iod, frames = float(argv[1]), int(argv[2])
    photos = [B.load_photo(td / p) for p in B.PHOTOS]
    for name in ("smooth", "jerky", "cut"):
        clip = B.make_clip(name, size, frames, 25.0, iod * size[0], True, photos)
        plain, dets = B.detector_landmarks(clip, td / B.WEIGHTS)
        d = B.errors(clip, B.method_matrices(clip, plain, dets, "default"))
        row: dict = {"default": round(d["rmse_px"], 3)}
        for variant, overrides in VARIANTS.items():
            t = time.perf_counter()
            e = B.errors(clip, B.tracked_matrices(clip, td / B.WEIGHTS, **overrides))
            row[variant] = (round(e["rmse_px"], 3), round(e["rmse_px"] / d["rmse_px"], 2),
                            round(e["jitter_px"], 3), round(time.perf_counter() - t, 1))
        print(name, row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["640x360", "0.07", "150"])
