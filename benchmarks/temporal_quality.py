"""B3, temporal smoothing: detail kept and flicker damped, on real clips.

    PYTHONPATH=. python benchmarks/temporal_quality.py [--frames 24] [--clips NAME,NAME,...]

Per real clip (first ``--frames`` frames), the product runs with ``--temporal off`` and the
default ``residual`` smoother, with the identity restorer and with GPEN-BFR-256 of **random weights** (the real architecture; its output
is noise-like, so its flicker shows how the stage damps an unstable restorer, not how trained GPEN
behaves). Real MobileNet detector, default tracking and RTS alignment smoothing, CPU geometry,
lossless PNG output. Each output is measured against the clip with
:func:`gpen_video.quality.measure_frames` (faces found once on the source): warping-error ratio
(result / source, Lai et al. 2018, flow on the source, occlusion-checked, at 128 px in the face
mask) and face-core sharpness ratio (variance of the Laplacian). "temporal s" is the run's busy
time in the temporal stage; "% of wall" its share of the run's wall time.

Also the choice of how the previous residual is carried (crop-level, instruments on a real
photo: a texture fixed in crop space, a sharpening that follows the input, fresh noise), under
alignment jitter (±0.4 px) and a steady drift (1 px/frame): ``none`` vs ``translation``.

Writes ``benchmarks/results/temporal_quality.json`` and the ``temporal-quality`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TESTDATA = REPO.parent / "shared" / "testdata"
RESULTS_JSON = REPO / "benchmarks" / "results" / "temporal_quality.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- temporal-quality:begin -->", "<!-- temporal-quality:end -->"
CLIPS = ("liveportrait_d0", "liveportrait_d18", "liveportrait_s18")
MODES = ("off", "residual")


def _source_faces(clip: Path, frames: list, detector) -> list:
    from gpen_video.faces import FaceStream
    from gpen_video.media import VideoSource

    with VideoSource(clip) as src:
        fps = float(src.fps)
    stream = FaceStream(fps=fps, crop_size=256)
    out = []
    for img in frames:
        out += stream.push(detector.detect([img])[0], img)
    out += stream.flush()
    return [list(ff.faces) for ff in out]


def _run(clip: Path, out: Path, frames: int, mode: str, restorer, detector) -> tuple:
    from gpen_video import pipeline
    from tests.pipeline_helpers import read_frames, run_options

    opts = run_options(TESTDATA, clip, out, backend="identity", codec="png",
                       frames=(0, frames - 1), temporal="off" if mode == "off" else "residual",
                       overwrite=True)
    summary = pipeline.run(opts, restorer=restorer, detector=detector)
    return [f.image for f in read_frames(out)], summary


def measure_clip(name: str, frames: int, work: Path, restorers: dict, detector) -> list[dict]:
    from gpen_video.quality import measure_frames
    from tests.pipeline_helpers import read_frames

    clip = TESTDATA / "videos" / f"{name}.mp4"
    source = [f.image for f in read_frames(clip)[:frames]]
    faces = _source_faces(clip, source, detector)
    rows = []
    for rname, restorer in restorers.items():
        for mode in MODES:
            result, summary = _run(clip, work / "out.mov", frames, mode, restorer, detector)
            q = measure_frames(source, result, faces).clip
            t = summary.stage_seconds.get("temporal", 0.0)
            rows.append({"clip": name, "restorer": rname, "temporal": mode,
                         "frames": summary.frames, "faces": summary.faces,
                         "warp_ratio": q.warp_ratio, "sharpness_ratio": q.sharpness_ratio,
                         "temporal_seconds": t, "wall_seconds": summary.seconds,
                         "temporal_ms_per_face": 1000 * t / max(1, summary.faces)})
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def motion_choice() -> list[dict]:
    """Crop-level instruments: how much each way of carrying the residual keeps and damps."""
    import cv2
    import numpy as np

    from gpen_video.compose.temporal import ResidualSettings, TemporalSmoother
    from tests.geometry import face_photo
    from tests.test_temporal import SIZE, _crop, _flicker, _inner, _texture

    photo = face_photo(TESTDATA)

    def kept(out, src, ref):
        r = _inner(ref - src)
        return float((_inner(out - src) * r).sum() / np.square(r).sum())

    paths = {"jitter ±0.4 px": lambda t: (0.4 * np.sin(1.7 * t), 0.4 * np.cos(2.3 * t)),
             "drift 1 px/frame": lambda t: (1.0 * t, 0.3 * t)}
    rows = []
    for label, path in paths.items():
        for motion in ("none", "translation"):
            s = ResidualSettings(motion=motion)
            a, b, c = (TemporalSmoother(SIZE, settings=s) for _ in range(3))
            rng = np.random.default_rng(0)
            tex, ks, kt, nin, nout = _texture(), [], [], [], []
            for t in range(24):
                src = _crop(photo, *path(t))
                ref = np.clip(src + tex, 0, 1)
                kt.append(kept(a(1, src, ref), src, ref))
                sharp = np.clip(src + (src - cv2.GaussianBlur(src, (0, 0), 1.0)), 0, 1)
                ks.append(kept(b(1, src, sharp), src, sharp))
                noisy = src + rng.normal(0, 0.03, src.shape).astype(np.float32)
                nin.append(noisy - src)
                nout.append(c(1, src, noisy) - src)
            rows.append({"path": label, "motion": motion, "texture_kept": float(np.mean(kt[1:])),
                         "sharpening_kept": float(np.mean(ks[1:])),
                         "noise_flicker_ratio": _flicker(nout) / _flicker(nin)})
    return rows


def _markdown(result: dict) -> str:
    lines = [BEGIN, "## B3: temporal smoothing, detail kept and flicker damped "
                    "(`benchmarks/temporal_quality.py`)", "",
             __doc__.split("\n\n", 2)[2].split("Writes")[0].strip().replace("\n", " "), "",
             f"Date: {result['date']}; machine: {result['machine']}; 1-min load "
             f"{result['load_before']} → {result['load_after']} (shared 2-core box: times are "
             "indicative, ratios are what to read).", "",
             "| clip | restorer | temporal | warping error / source | sharpness / source | "
             "temporal s | % of wall | ms/face |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        name = "GPEN-BFR-256 (random weights)" if r["restorer"] == "gpen256" else "identity"
        lines.append(f"| {r['clip']} | {name} | {r['temporal']} | {r['warp_ratio']:.3f} | "
                     f"{r['sharpness_ratio']:.3f} | {r['temporal_seconds']:.2f} | "
                     f"{100 * r['temporal_seconds'] / r['wall_seconds']:.1f} | "
                     f"{r['temporal_ms_per_face']:.1f} |")
    lines += ["", "How the previous residual is carried (crop level, 128 px, mean over 23 "
                  "frames; `kept` = projection of the output's change on the instrument's):", "",
              "| motion in the crop | carried | fixed texture kept | sharpening kept | "
              "noise flicker out/in (MSE) |", "| --- | --- | ---: | ---: | ---: |"]
    for r in result["motion_choice"]:
        lines.append(f"| {r['path']} | {r['motion']} | {r['texture_kept']:.3f} | "
                     f"{r['sharpening_kept']:.3f} | {r['noise_flicker_ratio']:.3f} |")
    lines += ["", "Raw data: `benchmarks/results/temporal_quality.json`.", END]
    return "\n".join(lines)


def main() -> None:
    from gpen_video.backends import create_restorer
    from gpen_video.bench.measure import cpu_model, load_average
    from gpen_video.bench.records import write_json, write_section
    from gpen_video.faces import FaceDetector
    from gpen_video.options import DetectOptions, ModelOptions, RestoreOptions

    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--clips", default=",".join(CLIPS))
    args = parser.parse_args()
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    detector = FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu"))
    restorers = {"identity": create_restorer(ModelOptions(), RestoreOptions(backend="identity")),
                 "gpen256": create_restorer(ModelOptions(name="GPEN-BFR-256",
                                                         random_weights=True),
                                            RestoreOptions(backend="torch", device="cpu"))}
    for r in restorers.values():
        r.load()
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="gpen_temporal_"))
    rows = []
    for name in args.clips.split(","):
        rows += measure_clip(name, args.frames, work, restorers, detector)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/temporal_quality.py " + " ".join(sys.argv[1:]),
              "machine": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
              "load_before": load_before, "load_after": load_average(), "rows": rows,
              "motion_choice": motion_choice()}
    write_json(RESULTS_JSON, result)
    write_section(RESULTS_MD, _markdown(result), BEGIN, END)


if __name__ == "__main__":
    main()
