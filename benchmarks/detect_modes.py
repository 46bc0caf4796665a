"""Tracked detection against full-frame detection on the real clips: restored face instances.

    PYTHONPATH=. python benchmarks/detect_modes.py            # every clip in testdata/videos
    PYTHONPATH=. python benchmarks/detect_modes.py --clips liveportrait_d0.mp4

Each clip of ``../shared/testdata/videos/`` runs through :func:`gpen_video.pipeline.run` twice —
``--detect tracked`` (the default) and ``--detect full`` (every frame detected whole, the earlier
behaviour) — with the identity restorer (the faces stage is what differs; the network does not
change which faces are pasted) and RetinaFace MobileNet-0.25 (local weights), everything else at
its defaults. Counted: face instances pasted (one per face per output frame), frames with at
least one face, distinct track ids, and the faces step's busy time ("detect" + "track" of the
stage clock). Writes ``benchmarks/results/detect_modes.json`` and the ``detect_modes`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpen_video.bench.measure import load_average  # noqa: E402
from gpen_video.bench.records import update_section, write_json  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
RESULTS_JSON = REPO / "benchmarks" / "results" / "detect_modes.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
MODES = ("tracked", "full")


def count_faces(clip: Path, mode: str, workdir: Path, detector=None) -> dict:
    """One run of ``clip`` in detection ``mode``: what was pasted, and the faces step's time."""
    from gpen_video import pipeline
    from gpen_video.options import DetectOptions, RestoreOptions, RunOptions

    instances = 0
    frames_with = 0
    ids: set[int] = set()

    def observe(index: int, faces: list) -> None:
        nonlocal instances, frames_with
        instances += len(faces)
        frames_with += bool(faces)
        ids.update(face.track_id for face in faces)

    options = RunOptions(
        input=clip, output=workdir / f"{clip.stem}_{mode}.mp4", overwrite=True, progress="none",
        restore=RestoreOptions(backend="identity", device="cpu"),
        detect=DetectOptions(network="mobile0.25", device="cpu", mode=mode,
                             weights=TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"))
    clock = pipeline.StageClock()
    summary = pipeline.run(options, observer=observe, clock=clock, detector=detector)
    return {"frames": summary.frames, "face_instances": instances,
            "frames_with_faces": frames_with, "tracks": len(ids),
            "faces_step_seconds": clock.seconds["detect"] + clock.seconds["track"],
            "detect_seconds": clock.seconds["detect"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=None, help="file names in testdata/videos")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    clips = sorted((TESTDATA / "videos").glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if c.name in args.clips]
    load_before = load_average(None, float("nan"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            row = {"clip": clip.name}
            for mode in MODES:
                row[mode] = count_faces(clip, mode, Path(tmp))
                print(clip.name, mode, row[mode], flush=True)
            full = row["full"]["face_instances"]
            row["difference"] = (row["tracked"]["face_instances"] - full) / full if full else 0.0
            rows.append(row)
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, 2 cores, torch threads 1",
              "load": [load_before, load_average(None, float("nan"))], "clips": rows}
    write_json(RESULTS_JSON, report)
    update_section(RESULTS_MD, "detect_modes", markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = ["## Tracked detection vs full-frame detection: faces restored on the real clips "
             "(`benchmarks/detect_modes.py`)", "",
             f"{report['date']}, {report['machine']}, 1-min load {report['load'][0]:.1f} → "
             f"{report['load'][1]:.1f} (shared machine). Identity restorer, RetinaFace "
             "MobileNet-0.25, defaults otherwise. Face instances = faces pasted summed over "
             "frames; faces-step time = the stage clock's detect + track seconds (overlapped "
             "run, load-sensitive).", "",
             "| clip | frames | instances tracked | instances full | difference | frames with "
             "faces (tracked / full) | tracks (tracked / full) | faces step s (tracked / full) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["clips"]:
        t, f = row["tracked"], row["full"]
        lines.append(f"| {row['clip']} | {f['frames']} | {t['face_instances']} | "
                     f"{f['face_instances']} | {100 * row['difference']:+.2f} % | "
                     f"{t['frames_with_faces']} / {f['frames_with_faces']} | {t['tracks']} / "
                     f"{f['tracks']} | {t['faces_step_seconds']:.1f} / "
                     f"{f['faces_step_seconds']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
