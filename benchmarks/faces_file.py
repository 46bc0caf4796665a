"""The faces file (issue 35): its size and speed, and chunked renders that read it.

``python benchmarks/faces_file.py size [--minutes 10]``
    Analyses real clips (MobileNet detector, default tracked options) and reports bytes per
    face-frame and the write and read times of their files; then writes a synthetic file of
    ``--minutes`` of 25 fps video with 3 faces on every frame (records drawn from a real
    analysis, values perturbed so the digits are as varied as real ones), reads it back
    (every line checked, then every face rebuilt as the render rebuilds it) and extrapolates
    to one hour.

``python benchmarks/faces_file.py chunks``
    ``liveportrait_d18.mp4`` (216 frames, one face on screen throughout: its track crosses both
    borders of three chunks at frames 72 and 144), the tests' small random-weight GPEN (128 px,
    torch, one thread), default temporal filter, rendered in this process as ``--workers 3``
    renders each chunk (its margins): with ``--faces-from`` (an analysis of the whole clip),
    with ``--detect full`` and with tracked detection, each against the single run of the same
    options. Reports, per variant, whether every chunk's alignment matrices are the single
    run's bit for bit, the worst frame's PSNR and the number of identical frames.

Both write JSON to ``benchmarks/results/faces_file.json`` (``--json``), merging sections.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TESTDATA = REPO.parent / "shared" / "testdata"
WEIGHTS = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _options(clip: Path, out: Path, model: Path | None = None, **kw):
    from tests.pipeline_helpers import run_options

    return run_options(TESTDATA, clip, out, model=model, codec="ffv1", **kw)


def size(minutes: float, work: Path) -> dict:
    from gpen_video.faces.detect import FaceDetector
    from gpen_video.faces.faces_file import FacesWriter, open_faces, tracked_face
    from gpen_video.pipeline.analysis import analyse

    clips = ["liveportrait_d18", "liveportrait_s18", "liveportrait_d13"]
    detector = None
    real = []
    for name in clips:
        clip = TESTDATA / "videos" / f"{name}.mp4"
        options = _options(clip, work / f"{name}.faces")
        detector = detector or FaceDetector(options.detect)
        report = analyse(replace(options, progress="none"), options.output, detector=detector)
        t = time.perf_counter()
        faces = open_faces(options.output)
        n = sum(len(r.faces) for r in faces.frames())
        read = time.perf_counter() - t
        real.append({"clip": name, "frames": report.frames, "face_frames": report.faces,
                     "bytes": report.bytes, "bytes_per_face_frame": report.bytes / max(1, n),
                     "analysis_seconds": round(report.seconds, 2),
                     "write_stage_seconds": round(report.stage_seconds.get("encode", 0.0), 3),
                     "read_seconds": round(read, 3), "load_avg": _load()})
        print(real[-1], flush=True)
    # synthetic: records of a real analysis, perturbed, 3 faces per frame
    source = open_faces(work / "liveportrait_s18.faces")
    templates = [tracked_face(f, r.index, 256) for r in source.frames() for f in r.faces]
    rng = np.random.default_rng(0)
    frames = int(minutes * 60 * 25)
    header = {"clip": source.clip, "range": {"start": 0, "end": frames - 1, "to_end": True},
              "options": source.options}
    path = work / "synthetic.faces"
    writer = FacesWriter(path, header, overwrite=True)
    t = time.perf_counter()
    prepared = 0.0
    for i in range(frames):
        t0 = time.perf_counter()
        faces = []
        for k in range(3):
            base = templates[(i + 97 * k) % len(templates)]
            jitter = rng.normal(0, 0.5, 4)
            params = replace(base.params, cx=base.params.cx + 300 * k + jitter[0],
                             cy=base.params.cy + jitter[1], width=base.params.width + jitter[2],
                             angle=base.params.angle + jitter[3] * 1e-3)
            faces.append(replace(base, track_id=k + 1, frame_index=i, params=params,
                                 # the detector's outputs are float32 values
                                 landmarks=(base.landmarks + rng.normal(0, 0.5, (5, 2))).astype(
                                     np.float32).astype(np.float64),
                                 box=(base.box + rng.normal(0, 0.5, 4)).astype(
                                     np.float32).astype(np.float64),
                                 frames_since_start=i, score=float(np.float32(
                                     min(0.99999, base.score + rng.normal(0, 1e-4))))))
        prepared += time.perf_counter() - t0
        writer.write(i, False, faces)
    writer.close()
    write = time.perf_counter() - t - prepared
    t = time.perf_counter()
    checked = open_faces(path)
    scan = time.perf_counter() - t
    t = time.perf_counter()
    rebuilt = sum(len([tracked_face(f, r.index, 512) for f in r.faces]) for r in checked.frames())
    rebuild = time.perf_counter() - t
    bytes_ = path.stat().st_size
    hour = 60 / minutes
    synthetic = {"minutes": minutes, "frames": frames, "face_frames": rebuilt, "bytes": bytes_,
                 "bytes_per_face_frame": bytes_ / rebuilt, "write_seconds": round(write, 2),
                 "check_seconds": round(scan, 2), "read_and_rebuild_seconds": round(rebuild, 2),
                 "one_hour_25fps_3_faces": {"megabytes": round(bytes_ * hour / 1e6, 1),
                                            "write_seconds": round(write * hour, 1),
                                            "check_seconds": round(scan * hour, 1),
                                            "read_and_rebuild_seconds": round(rebuild * hour,
                                                                              1)},
                 "load_avg": _load()}
    print(synthetic, flush=True)
    return {"real": real, "synthetic": synthetic}


def chunks(work: Path) -> dict:
    import torch

    from gpen_video import pipeline
    from gpen_video.faces.detect import FaceDetector
    from gpen_video.farm.warmup import chunk_margins, chunk_ranges
    from gpen_video.farm.plan import Chunk
    from gpen_video.pipeline.analysis import analyse
    from tests.faces_file_helpers import frames_of
    from tests.pipeline_helpers import save_small_gpen
    from tests.workers_helpers import psnr

    torch.set_num_threads(1)
    clip = TESTDATA / "videos" / "liveportrait_d18.mp4"
    model = save_small_gpen(work / "gpen128.pth")
    spans = [Chunk(0, 0, 71), Chunk(1, 72, 143), Chunk(2, 144, 215)]

    def render(options, detector):
        seen: dict[int, list] = {}
        pipeline.run(options, detector=detector, observer=lambda i, f: seen.__setitem__(i, f),
                     serial=True)
        return seen

    out = {"clip": clip.name, "borders": [72, 144], "model": "small random-weight GPEN 128 px "
           "(tests.pipeline_helpers.save_small_gpen), torch, 1 thread", "variants": {}}
    base = _options(clip, work / "x.mkv", model=model)
    detector = FaceDetector(base.detect)
    faces = work / "d18.faces"
    analyse(replace(base, output=faces, progress="none"), faces, detector=detector)
    variants = {"faces-from (tracked analysis)": replace(base, faces_from=faces),
                "detect full": replace(base, detect=replace(base.detect, mode="full")),
                "detect tracked": base}
    for name, options in variants.items():
        t = time.perf_counter()
        tag = name.split()[0] + name.split()[1][:4]
        single_path = work / f"single-{tag}.mkv"
        # the single run of the same options (faces-from: the detecting tracked run, which the
        # file reproduces bit for bit; tests/test_faces_file.py)
        reference = base if options.faces_from is not None else options
        single = render(replace(reference, output=single_path), detector)
        ranges = chunk_ranges(spans, chunk_margins(options, 30.0), options.range)
        seen: dict[int, list] = {}
        chunk_frames = []
        for chunk, rng in zip(spans, ranges):
            path = work / f"chunk{chunk.index}-{tag}.mkv"
            seen.update(render(replace(options, output=path, range=rng), detector))
            chunk_frames += frames_of(path)
        ref = frames_of(single_path)
        values = [psnr(a, b) for a, b in zip(ref, chunk_frames)]
        same_matrices = all(
            [(f.track_id, f.matrix.tobytes()) for f in single[i]] ==
            [(f.track_id, f.matrix.tobytes()) for f in seen.get(i, [])] for i in single)
        finite = [v for v in values if np.isfinite(v)]
        out["variants"][name] = {
            "frames": len(values), "identical_frames": sum(not np.isfinite(v) for v in values),
            "worst_psnr_db": round(min(finite), 2) if finite else "inf",
            "matrices_bit_identical_every_frame": same_matrices,
            "frames_with_other_matrices": sum(
                [f.matrix.tobytes() for f in single[i]] != [f.matrix.tobytes()
                                                            for f in seen.get(i, [])]
                for i in single),
            "lead_frames": chunk_margins(options, 30.0).lead,
            "seconds": round(time.perf_counter() - t, 1), "load_avg": _load()}
        print(name, out["variants"][name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["size", "chunks"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" /
                        "faces_file.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result = size(args.minutes, Path(tmp)) if args.what == "size" else chunks(Path(tmp))
    data = json.loads(args.json.read_text()) if args.json.is_file() else {}
    data[args.what] = {"date": started, "machine": "AMD EPYC, 2 logical CPUs shared, no GPU",
                       **result}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
