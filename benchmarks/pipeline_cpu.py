"""End-to-end fps of the product on the CPU against a naive per-frame restorer (issue 5, item 7).

    PYTHONPATH=. python benchmarks/pipeline_cpu.py                 # 720p clip, 256 and 512
    PYTHONPATH=. python benchmarks/pipeline_cpu.py --models GPEN-BFR-256 --frames 30 --repeats 3

For each GPEN architecture (random weights: the speed of the real network, not a restoration) and
each CPU backend (``--backends``: torch, and onnxruntime — what ``--backend auto`` picks on a CPU
where it is installed) the same loaded restorer runs through

* ``pipeline``: :func:`gpen_video.pipeline.run` — threads and bounded queues, faces batched
  across frames (``--batch``), detection batched, paste over each face's region only;
* ``naive``: ``benchmarks/naive_pipeline.py`` — one thread, detect batch 1, restore batch 1,
  full-frame paste;

and, once, ``pipeline`` with the identity restorer (everything but the network). Same clip, same
frames, same detector (RetinaFace MobileNet-0.25, local weights), same encoder settings. fps =
frames / wall time from the first decoded frame to the closed output (model and detector loading
excluded, a warm-up forward first). Median over ``--repeats``. Writes
``benchmarks/results/pipeline_cpu.json`` and the ``pipeline_cpu`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gpen_video.bench.measure import in_thread, load_average  # noqa: E402
from gpen_video.bench.records import write_json, write_section  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
RESULTS_JSON = REPO / "benchmarks" / "results" / "pipeline_cpu.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- pipeline_cpu:begin -->", "<!-- pipeline_cpu:end -->"


def _load() -> float:
    return load_average(None, float("nan"))


def _options(clip: Path, out: Path, frames: int, batch: int, backend: str = "torch"):
    from gpen_video.options import (DetectOptions, ModelOptions, RangeOptions, RestoreOptions,
                                    RunOptions)

    return RunOptions(
        input=clip, output=out, overwrite=True, progress="none",
        model=ModelOptions(name="GPEN-BFR-512"),
        restore=RestoreOptions(backend=backend, device="cpu", batch=batch),
        detect=DetectOptions(network="mobile0.25", device="cpu",
                             weights=TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"),
        range=RangeOptions(start=0, end=frames - 1),
    )


def bench_model(model: str, backend: str, clip: Path, frames: int, repeats: int, batch: int,
                workdir: Path) -> dict:
    import numpy as np

    from gpen_video import pipeline
    from gpen_video.backends import create_restorer
    from gpen_video.faces import FaceDetector
    from gpen_video.media import VideoSource
    from gpen_video.options import ModelOptions, RestoreOptions
    from naive_pipeline import run_naive

    restorer = create_restorer(ModelOptions(name=model, random_weights=True),
                               RestoreOptions(backend=backend, device="cpu", batch=batch,
                                              engine_dir=workdir / "engines")).load()
    size = restorer.spec.size
    restorer.restore(np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32))
    opts = _options(clip, workdir / f"pipeline_{size}.mp4", frames, batch, backend)
    detector = FaceDetector(opts.detect)  # batched, as the product runs it
    naive_detector = FaceDetector(replace(opts.detect, batch=1))
    with VideoSource(clip) as source:
        first = next(iter(source)).image
    for d in (detector, naive_detector):  # warm-up
        d.detect([first] * d.options.batch)
    runs: dict[str, list] = {"pipeline": [], "naive": []}
    for _ in range(repeats):
        load = _load()
        summary = pipeline.run(opts, restorer=restorer, detector=detector)
        runs["pipeline"].append({**summary.as_dict(), "load": load})
        print(f"{model} {backend} pipeline: {summary.fps:.3f} fps", file=sys.stderr)
        load = _load()
        naive = in_thread(run_naive, clip, workdir / f"naive_{size}.mp4", restorer,
                          naive_detector, range_options=opts.range)
        runs["naive"].append({**naive, "load": load})
        print(f"{model} {backend} naive: {naive['fps']:.3f} fps", file=sys.stderr)
    restorer.close()
    med = {k: statistics.median(r["fps"] for r in v) for k, v in runs.items()}
    return {"model": model, "backend": backend, "random_weights": True, "crop": size,
            "frames": frames,
            "batch": batch, "repeats": repeats, "runs": runs,
            "median_fps": med, "ratio": med["pipeline"] / med["naive"] if med["naive"] else None}


def bench_identity(clip: Path, frames: int, workdir: Path) -> dict:
    from gpen_video import pipeline

    load = _load()
    summary = pipeline.run(_options(clip, workdir / "identity.mp4", frames, 8, "identity"))
    return {**summary.as_dict(), "load": load}


def _machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version()}


def write_markdown(result: dict) -> None:
    m = result["machine"]
    lines = [
        BEGIN,
        "## End-to-end pipeline vs naive per-frame restorer, CPU (`benchmarks/pipeline_cpu.py`)",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs shared with other jobs, torch "
        f"{m['torch']} ({m['torch_threads']} threads), Python {m['python']}. Date: "
        f"{result['date']}. Command: `{result['command']}`.",
        "",
        f"Clip: `{result['clip']}` (1280×720 H.264 + AAC, one face ≈ 215 px wide), the first N "
        "frames (`--frames 0-(N-1)`). GPEN with **random weights** of the real architectures (the "
        "speed of the network, not a restoration); detector RetinaFace MobileNet-0.25; encoder "
        "libx264 CRF 18 (follows the source). fps = frames / wall time from the first decoded "
        "frame to the closed output, model loading excluded, after a warm-up forward; median of "
        "the repeats. *pipeline*: the product (threads + bounded queues, faces batched across "
        "frames, detection batched, paste over each face's region). *naive*: "
        "`benchmarks/naive_pipeline.py` (one thread, detect batch 1, restore batch 1, per-frame "
        "fit, full-frame paste), same network object, detector and encoder. Few frames for 512: "
        "one forward costs several seconds per face on this CPU (restore time ÷ frames; one "
        "face per frame).",
        "",
        "| model | backend | frames | repeats | pipeline fps | naive fps | ratio | pipeline: time "
        "per stage (s, busy, overlapping) | naive: time per stage (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in result["models"]:
        p = r["runs"]["pipeline"][len(r["runs"]["pipeline"]) // 2]
        n = r["runs"]["naive"][len(r["runs"]["naive"]) // 2]
        ps = ", ".join(f"{k} {v:.1f}" for k, v in p["stage_seconds"].items() if v >= 0.05)
        ns = ", ".join(f"{k} {v:.1f}" for k, v in n["stage_seconds"].items() if v >= 0.05)
        lines.append(f"| {r['model']} | {r.get('backend', 'torch')} | {r['frames']} | "
                     f"{r['repeats']} | "
                     f"{r['median_fps']['pipeline']:.3f} | {r['median_fps']['naive']:.3f} | "
                     f"{r['ratio']:.2f}× | {ps} | {ns} |")
    ident = result.get("identity")
    if ident:
        st = ", ".join(f"{k} {v:.1f}" for k, v in ident["stage_seconds"].items() if v >= 0.05)
        lines += ["", f"Everything but the network (`--backend identity`, 512 crops, "
                      f"{ident['frames']} frames): {ident['fps']:.2f} fps; {st}."]
    by_backend = {(r["model"], r.get("backend", "torch")): r["median_fps"]["pipeline"]
                  for r in result["models"]}
    gains = [f"{model} {fps / by_backend[(model, 'torch')]:.2f}×"
             for (model, backend), fps in by_backend.items()
             if backend == "onnxruntime" and by_backend.get((model, "torch"))]
    if gains:
        lines += ["", "Backend: the product with onnxruntime (what `--backend auto` picks on a CPU "
                      "where it is installed) against the product with torch, end to end: "
                      + ", ".join(gains) + "."]
    lines += ["", "Reading it: on two CPU cores the network is most of the busy time, so the "
              "end-to-end gain of the pipeline is modest and shrinks as the network grows; it "
              "comes from batched detection, pasting over the face's region instead of the whole "
              "frame, and decode/paste/encode overlapping the network (all stages share the same "
              "two cores, so overlap buys little here). Faces are restored one per forward pass "
              "on the CPU by both backends (batch 1 measured faster per face than batch 4–8 here), "
              "so the "
              "pipeline does not win by batching the network on this machine; on a GPU it would "
              "(not measurable here: no GPU). With the 512 network the pipeline is at or below "
              "the naive one here: the network's busy time grows when detection and encoding "
              "run beside it on the same two cores (compare the restore times of a row). "
              "Runs alternate pipeline/naive; the machine is "
              "shared, and the 1-minute load average at each run is in the JSON — an earlier "
              "attempt at load 8–11 gave 3–5× slower and erratic numbers, so compare rows of the "
              "same run only.",
              "", "Raw data: `benchmarks/results/pipeline_cpu.json`.", END]
    write_section(RESULTS_MD, "\n".join(lines), BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=TESTDATA / "videos" / "liveportrait_s18.mp4")
    parser.add_argument("--models", nargs="+", default=["GPEN-BFR-256", "GPEN-BFR-512"])
    parser.add_argument("--frames", nargs="+", type=int, default=[30, 8],
                        help="frames per model (in --models order)")
    parser.add_argument("--repeats", nargs="+", type=int, default=[3, 1])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"],
                        choices=["torch", "onnxruntime"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the RESULTS.md section from the JSON, measure nothing")
    args = parser.parse_args()
    if args.render_only:
        write_markdown(json.loads(RESULTS_JSON.read_text()))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpen_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/pipeline_cpu.py " + shlex.join(sys.argv[1:]),
              "clip": args.clip.name, "machine": _machine(), "models": []}
    result["identity"] = bench_identity(args.clip, max(args.frames), workdir)
    for i, model in enumerate(args.models):
        frames = args.frames[min(i, len(args.frames) - 1)]
        repeats = args.repeats[min(i, len(args.repeats) - 1)]
        for backend in args.backends:
            result["models"].append(bench_model(model, backend, args.clip, frames, repeats,
                                                args.batch, workdir))
    write_json(RESULTS_JSON, result)
    write_markdown(result)
    print(json.dumps({f"{r['model']} {r['backend']}": {"fps": r["median_fps"],
                                                       "ratio": r["ratio"]}
                      for r in result["models"]}))


if __name__ == "__main__":
    main()
