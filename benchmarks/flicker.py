"""B2, static-scene flicker: how much restored faces shimmer on a face that does not move.

    PYTHONPATH=. python benchmarks/flicker.py

One still face (a real FFHQ photo, 176 px, in a 320×288 frame) repeated 60 times with fresh
Gaussian noise (σ = 3/255) per frame, encoded intra-only with libx264 CRF 18, so every frame
carries its own sensor + codec noise, like a locked-off shot. The product runs on it (real
MobileNet detector, tracking + RTS smoothing, lossless PNG output) with ``--temporal off`` and
``--temporal residual``, with the identity restorer and with GPEN-BFR-256 (**random weights**: a
network of the real architecture whose output is noise-like, so its flicker says how the
temporal stage damps an unstable restorer, not how the trained GPEN behaves). Flicker = mean
absolute difference between consecutive frames (0–255) over the face core (pixels where the
paste mask is 1). Writes ``benchmarks/results/flicker.json`` and the ``flicker`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TESTDATA = REPO.parent / "shared" / "testdata"
RESULTS_JSON = REPO / "benchmarks" / "results" / "flicker.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- flicker:begin -->", "<!-- flicker:end -->"


def main() -> None:
    from gpen_video import pipeline
    from gpen_video.bench.records import write_json, write_section
    from gpen_video.options import ModelOptions
    from tests.pipeline_helpers import flicker, mask_union, read_frames, run_options
    from tests.test_pipeline import _noisy_still

    work = Path(tempfile.mkdtemp(prefix="gpen_flicker_"))
    clip = _noisy_still(TESTDATA, work / "still.mp4")
    source = [f.image for f in read_frames(clip)]
    rows = []
    for backend, model in (("identity", None), ("torch", "GPEN-BFR-256")):
        for temporal in ("off", "residual"):
            seen: dict[int, list] = {}
            opts = run_options(TESTDATA, clip, work / "out.mov", backend=backend, codec="png",
                               temporal=temporal, overwrite=True)
            if model is not None:
                opts = opts.__class__(**{**opts.__dict__,
                                         "model": ModelOptions(name=model, random_weights=True)})
            summary = pipeline.run(opts, observer=lambda i, f: seen.__setitem__(i, f))
            out = [f.image for f in read_frames(work / "out.mov")]
            core = mask_union(seen[30], source[30].shape) >= 0.999
            row = {"restorer": summary.restorer, "random_weights": model is not None,
                   "temporal": temporal, "frames": summary.frames,
                   "flicker_input": flicker(source, core), "flicker_output": flicker(out, core),
                   "core_pixels": int(core.sum())}
            rows.append(row)
            print(row, file=sys.stderr)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/flicker.py", "rows": rows}
    write_json(RESULTS_JSON, result)
    lines = [BEGIN, "## B2: static-scene flicker (`benchmarks/flicker.py`)", "",
             __doc__.split("\n\n", 2)[2].split("Writes")[0].strip().replace("\n", " "), "",
             f"Date: {result['date']}.", "",
             "| restorer | temporal | flicker in (0–255) | flicker out | out / in |",
             "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        name = "GPEN-BFR-256 (random weights)" if r["random_weights"] else "identity"
        lines.append(f"| {name} | {r['temporal']} | {r['flicker_input']:.3f} | "
                     f"{r['flicker_output']:.3f} | {r['flicker_output'] / r['flicker_input']:.2f} |")
    lines += ["", "Raw data: `benchmarks/results/flicker.json`.", END]
    write_section(RESULTS_MD, "\n".join(lines), BEGIN, END)


if __name__ == "__main__":
    main()
