"""An EXR half 2K plate sequence through the pipeline on this CPU: frames/s and peak memory.

Builds a 2048×1080 ACEScg plate sequence (half float, PIZ, one real face of ~420 px from
``gpen_ffhq-10_00004.png``, moving 3 px a frame, highlights above 1.0 in the corners) and, for
comparison in the same interleaved run, the same frames as a 16-bit PNG sequence (its display
encoding). Each is run through the real pipeline in a fresh process
(``python -m gpen_video shot.####.exr out.####.exr --backend identity --detector mobile0.25
--matte matte.####.exr``): the identity restorer (no network, so the figure is the plate path's
own cost: reading, OCIO both ways, detection, paste, the float blend, writing EXR and the matte)
and the real RetinaFace MobileNet-0.25 detector. Frames/s is the summary's render time (setup
excluded); peak memory is the child's ``ru_maxrss``.

    python benchmarks/plates_exr.py --workdir /tmp/plates-bench --frames 24
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

import cv2
import numpy as np

from gpen_video.bench import records

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"
RESULT_JSON = REPO / "benchmarks" / "results" / "plates_exr.json"
W, H, FACE = 2048, 1080, 420


def make_plates(folder: Path, frames: int) -> None:
    """``shot.1001.exr`` … (ACEScg half PIZ) and ``shot.1001.png`` … (16-bit display)."""
    import OpenEXR

    from gpen_video.media.scene_linear import DisplayEncoding
    from gpen_video.media.stills import Picture, write_picture

    enc = DisplayEncoding.create("ACEScg", {}, env={})
    photo = cv2.cvtColor(cv2.imread(str(TESTDATA / "images" / "gpen_ffhq-10_00004.png")),
                         cv2.COLOR_BGR2RGB)
    face = cv2.resize(photo, (FACE, FACE), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    background = np.stack([0.35 + 0.2 * np.sin(xx / 97), 0.4 + 0.15 * np.cos(yy / 71),
                           0.3 + 0.1 * np.sin((xx + yy) / 131)], -1)
    for k in range(frames):
        display = background.copy()
        x0, y0 = 800 + 3 * k, 300
        display[y0:y0 + FACE, x0:x0 + FACE] = face / 255.0
        lin = enc.from_display(display)
        lin[:64, :64] = 4.0  # a highlight far from the face
        number = 1001 + k
        OpenEXR.File({"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
                      "framesPerSecond": (24, 1)},
                     {c: np.ascontiguousarray(lin[..., i].astype(np.float16))
                      for i, c in enumerate("RGB")}).write(str(folder / f"shot.{number}.exr"))
        png = np.rint(np.clip(display, 0, 1) * 65535).astype(np.uint16)
        write_picture(folder / f"png.{number}.png", Picture(png))


def run_one(src: str, dst: str, matte: str, folder: Path, frames: int) -> dict:
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    cmd = [sys.executable, "-m", "gpen_video", str(folder / src), str(folder / dst), "-y",
           "--backend", "identity", "--model", "GPEN-BFR-512", "--detector", "mobile0.25",
           "--detector-weights", str(weights), "--progress", "json",
           "--matte", str(folder / matte), "--frames", f"1001-{1000 + frames}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, text=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = None
    for line in done.stdout.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "frames" in data and "seconds" in data:
            summary = data
    if summary is None:
        raise SystemExit(f"no summary in the output of {' '.join(cmd)}:\n{done.stdout[-2000:]}")
    return {"input": src, "frames": summary["frames"], "faces": summary.get("faces"),
            "render_s": round(summary["seconds"], 2),
            "fps": round(summary["frames"] / summary["seconds"], 3),
            "wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_mib_so_far": round(peak_kib / 1024, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gpen-video-plates"))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--long", type=int, default=48,
                        help="frames of a second EXR run (is peak memory bounded by the queues, "
                             "not by the sequence's length?)")
    parser.add_argument("--from-json", action="store_true",
                        help="only re-render the RESULTS.md section from the saved JSON")
    args = parser.parse_args()
    if args.from_json:
        render(json.loads(RESULT_JSON.read_text()))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    total = max(args.frames, args.long)
    if not (args.workdir / f"shot.{1000 + total}.exr").exists():
        make_plates(args.workdir, total)
    exr_bytes = sum(p.stat().st_size for p in args.workdir.glob("shot.*.exr")) / total
    rows = []
    # PNG first: ru_maxrss of children only ever grows, so the EXR figure is its own peak when
    # it is the larger one (said in the section when it is not)
    for src, dst, matte, n in (
            ("png.####.png", "outpng.####.png", "mattepng.####.png", args.frames),
            ("shot.####.exr", "out.####.exr", "matte.####.exr", args.frames),
            ("shot.####.exr", "outlong.####.exr", "mattelong.####.exr", args.long)):
        row = run_one(src, dst, matte, args.workdir, n)
        rows.append(row)
        print(row, flush=True)
    result = {"benchmark": "plates_exr", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": "x86_64, 2 cores shared with other sessions, 24 GiB, no GPU",
              "command": f"python benchmarks/plates_exr.py --workdir {args.workdir} "
                         f"--frames {args.frames} --long {args.long}",
              "size": f"{W}x{H}", "exr_mib_per_frame": round(exr_bytes / 2**20, 2),
              "results": rows}
    records.write_json(RESULT_JSON, result)
    render(result)


def render(result: dict) -> None:
    """Write this benchmark's section of benchmarks/RESULTS.md from its JSON."""
    rows = "\n".join(
        f"| {x['input']} | {x['frames']} | {x['faces']} | {x['render_s']} | {x['fps']} | "
        f"{x['peak_rss_mib_so_far']} | {x['load_avg_1min']} |" for x in result["results"])
    notes = "".join(f"{n}\n\n" for n in result.get("notes", ()))
    peaks = [x["peak_rss_mib_so_far"] for x in result["results"]]
    if len(peaks) == 3 and peaks[2] >= peaks[1]:
        notes = (f"{result['results'][2]['frames']} EXR frames peak at {peaks[2]} MiB against "
                 f"{peaks[1]} MiB for {result['results'][1]['frames']} "
                 f"({100 * (peaks[2] / peaks[1] - 1):+.1f} %): memory follows the queues, not "
                 "the sequence's length.\n\n") + notes
    block = f"""## EXR half 2K plates through the pipeline (`benchmarks/plates_exr.py`)

Machine: {result['machine']}. Date: {result['date']}. Command: `{result['command']}`.

A {result['size']} ACEScg plate sequence (half, PIZ, {result['exr_mib_per_frame']} MiB a frame,
one real face of 420 px, highlights of 4.0) through `python -m gpen_video shot.####.exr
out.####.exr --matte matte.####.exr` with the **identity restorer** (no network: the figure is
the plate path's own cost — read, OCIO to the display encoding and back, detection, paste, the
float blend, EXR and matte written) and the real RetinaFace MobileNet-0.25 detector; beside it,
in the same run, the same frames as a 16-bit PNG sequence. Frames/s from the summary's render
time (setup excluded); peak RSS is the children's `ru_maxrss` so far (runs in table order, so a
row's figure is its own peak when larger than the row above). The longer EXR run asks whether
memory follows the sequence's length (it must not: frames stream through bounded queues). Most of
the peak is the queues and the tracker's look-ahead holding 2K frames at 16 bits (13 MB each),
plus the float plate (13 MB) beside each EXR frame. The machine is shared with other sessions: the load column is
the 1-minute load average after each run; compare the rows with each other only.

| input | frames | faces | render (s) | frames/s | peak RSS (MiB) | load |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

{notes}
Raw data: `benchmarks/results/plates_exr.json`."""
    records.update_section(REPO / "benchmarks" / "RESULTS.md", "plates_exr", block)


if __name__ == "__main__":
    main()
