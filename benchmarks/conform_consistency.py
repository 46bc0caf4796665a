"""``gpen-video conform`` against whole-clip renders, frame by frame of the timeline.

The test edit of ``tests/test_conform.py`` (two 128×128 clips cut from LivePortrait d0 and d11:
two video tracks, a gap, a dissolve, an overlapping re-use, a 2× speed-up, a freeze frame, a
nested stack) is conformed with ``--handles 2 --merge-gap 0`` (five ranges, four of them starting
inside a face track), and each source clip is rendered whole with the same settings. For every
frame the relinked timeline shows, the restored range's frame is compared with the whole render's
frame at the same source frame (PSNR over the whole frame; "identical" = bit for bit).

Two settings, both lossless FFV1 ``bgr0``, real MobileNet detector, CPU:

* ``identity`` — the identity restorer, full-frame detection (what the tests use);
* ``gpen`` — random-weight GPEN-BFR-256 on torch with the product's default detection
  (tracked): its output changes a lot with any change of alignment, so it magnifies what a
  range's warm-up does not rebuild exactly.

    python benchmarks/conform_consistency.py

Writes ``benchmarks/results/conform_consistency.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import conform_helpers as ch  # noqa: E402
from tests.workers_helpers import psnr  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
WEIGHTS = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
SETTINGS = {
    "identity": ["--backend", "identity", "--detect", "full"],
    "gpen": ["--model", "GPEN-BFR-256", "--random-weights", "--backend", "torch"],
}


def gpen_video(*args: object) -> None:
    from gpen_video.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"gpen-video {' '.join(map(str, args))} exited {code}")


def measure(work: Path, media: dict[str, Path], timeline: Path, setting: str) -> dict:
    import opentimelineio as otio

    from gpen_video.conform.media import url_to_path

    common = ["--device", "cpu", "--detector", "mobile0.25", "--detector-weights", WEIGHTS,
              "--codec", "ffv1", "--pix-fmt", "bgr0", "--progress", "none",
              *SETTINGS[setting]]
    t0 = time.perf_counter()
    whole = {}
    for name, path in media.items():
        out = work / f"{setting}_whole_{name}.mkv"
        gpen_video(path, out, "-y", *common)
        whole[name] = ch.decoded(out)
    whole_seconds = time.perf_counter() - t0
    outdir = work / f"{setting}_out"
    t0 = time.perf_counter()
    gpen_video("conform", timeline, outdir, "--handles", 2, "--merge-gap", 0, *common)
    conform_seconds = time.perf_counter() - t0
    restored = otio.adapters.read_from_file(str(outdir / f"{timeline.stem}.restored.otio"))
    origin = {"A": ch.A_ORIGIN, "B": 0}
    files: dict[Path, list] = {}
    per_range: dict[str, list[float]] = {}
    for s in ch.shown_frames(restored):
        path = url_to_path(s.ref_url, Path("/"))
        files.setdefault(path, ch.decoded(path))
        source = path.stem[0]
        value = float(psnr(files[path][s.media_frame - s.ref_start],
                           whole[source][s.media_frame - origin[source]]))
        per_range.setdefault(path.name, []).append(value)
    values = [v for vs in per_range.values() for v in vs]
    finite = [v for v in values if v != float("inf")]
    return {"setting": setting, "args": [str(a) for a in SETTINGS[setting]],
            "frames_compared": len(values),
            "identical": sum(v == float("inf") for v in values),
            "worst_psnr": round(min(finite), 2) if finite else "inf",
            "per_range": {k: {"frames": len(v), "identical": sum(x == float("inf") for x in v),
                              "worst_psnr": (round(min(x for x in v if x != float("inf")), 2)
                                             if any(x != float("inf") for x in v) else "inf")}
                          for k, v in sorted(per_range.items())},
            "whole_renders_seconds": round(whole_seconds, 1),
            "conform_seconds": round(conform_seconds, 1)}


def main() -> None:
    import opentimelineio as otio
    import torch

    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a, b = ch.make_media(work / "media", TESTDATA)
        timeline = work / "cut.otio"
        otio.adapters.write_to_file(ch.edit_timeline(a, b), str(timeline))
        for setting in SETTINGS:
            results.append(measure(work, {"A": a, "B": b}, timeline, setting))
            print(json.dumps(results[-1]))
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.machine(),
              "cores": os.cpu_count(), "load": [round(x, 1) for x in os.getloadavg()],
              "torch_threads": 1, "results": results}
    out = REPO / "benchmarks" / "results" / "conform_consistency.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
