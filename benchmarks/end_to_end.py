"""Published end-to-end numbers (issue 7): gpen-video vs the naive per-frame pipeline, per stage.

    PYTHONPATH=. python benchmarks/end_to_end.py                      # all scenes, ≈ 15–30 min
    PYTHONPATH=. python benchmarks/end_to_end.py --scenes 1080p:1 --repeats 2

For each synthesised scene (1080p and 4K, 1 and 4 moving faces, from the checkout's FFHQ face;
:mod:`gpen_video.bench.synth`), with GPEN-BFR-256 (random weights of the real architecture: the
network's speed, not a restoration), the RetinaFace MobileNet-0.25 detector (real weights) and the
encoder following the source (libx264 CRF 18):

* **gpen-video**: :func:`gpen_video.bench.run_bench`'s worker — the real pipeline after a
  warm-up run, ``overlap`` (the product: fps, latency, memory) and ``serial`` (one stage at a
  time: the per-stage breakdown that adds up to the wall time), interleaved, medians;
* **naive**: ``benchmarks/naive_pipeline.py`` — one thread, detect batch 1, restore batch 1,
  per-frame fit, full-frame paste — with the *same* network object, detector weights, clip and
  encoder, after its own warm-up, run in a worker thread like the pipeline's torch work, one
  naive run after each gpen-video repeat (overlap, serial, naive, …) so both see the same load;

then the GPEN forward alone (the restorer on random crops, batch 8 for 256 and batch 1 for 512)
against the FLOP count of the same network. GPU rows are written "not measured" unless CUDA is
present. Writes ``benchmarks/results/end_to_end.json``, the ``end_to_end`` section of
``benchmarks/RESULTS.md`` and ``benchmarks/end_to_end_stages.png`` (the default configuration,
1080p with one face).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gpen_video.bench.measure import in_thread  # noqa: E402
from gpen_video.bench.records import write_json, write_section  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
RESULTS_JSON = REPO / "benchmarks" / "results" / "end_to_end.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
PLOT = REPO / "benchmarks" / "end_to_end_stages.png"
BEGIN, END = "<!-- end_to_end:begin -->", "<!-- end_to_end:end -->"
NO_GPU = "not measured (no GPU lent to this task)"
# scene → (frames, repeats): fewer frames where a run costs more
PLAN = {"1080p:1": (24, 3), "1080p:4": (12, 3), "4k:1": (12, 3), "4k:4": (8, 2)}


def run_options(model: str, batch: int):
    from gpen_video.options import (DetectOptions, ModelOptions, RestoreOptions, RunOptions)

    return RunOptions(
        input=Path("-"), output=Path("-"), progress="none",
        model=ModelOptions(name=model, random_weights=True, download=False),
        restore=RestoreOptions(backend="torch", device="cpu", batch=batch),
        detect=DetectOptions(network="mobile0.25", device="cpu",
                             weights=TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"))


def bench_scene(worker, scene: str, frames: int, repeats: int, workdir: Path, naive_detector
                ) -> dict:
    from gpen_video.bench.core import prepare_clips
    from gpen_video.bench.measure import PeakMemory, load_average, summarize
    from gpen_video.options import BenchOptions, RangeOptions
    from naive_pipeline import STAGES as NAIVE_STAGES
    from naive_pipeline import run_naive

    options = BenchOptions(run=worker.template, scenes=(scene,), frames=frames, repeats=repeats,
                           face=TESTDATA / "images" / "gpen_ffhq-10_00004.png", workdir=workdir)
    clip = prepare_clips(options, workdir, log=print)[0]
    rng = RangeOptions(start=0, end=frames - 1)
    out = workdir / f"naive_{scene.replace(':', '_')}.mp4"
    in_thread(run_naive, clip["clip"], out, worker.restorer, naive_detector,
              range_options=RangeOptions(start=0, end=min(frames, 4) - 1))  # warm-up
    naive_runs = []

    def naive_run(i: int) -> None:  # after each gpen-video repeat: same conditions
        load = load_average()
        with PeakMemory("cpu") as peak:
            r = in_thread(run_naive, clip["clip"], out, worker.restorer, naive_detector,
                          range_options=rng)
        r.update(load_avg_1min=load, peak_rss_mib=peak.rss_mib,
                 other_seconds=r["seconds"] - sum(r["stage_seconds"].values()))
        naive_runs.append(r)
        print(f"naive {scene} run {i + 1}/{repeats}: {r['fps']:.3f} fps (load {load})",
              flush=True)

    ours = worker.bench(clip, options, workdir, ("overlap", "serial"), log=print,
                        after_repeat=naive_run)
    naive = {"runs": naive_runs, "frames": naive_runs[0]["frames"],
             "faces": naive_runs[0]["faces"],
             "fps": summarize([r["fps"] for r in naive_runs]),
             "seconds": summarize([r["seconds"] for r in naive_runs]),
             "other_seconds": summarize([r["other_seconds"] for r in naive_runs]),
             "peak_rss_mib": summarize([r["peak_rss_mib"] for r in naive_runs]),
             "stage_seconds": {s: summarize([r["stage_seconds"][s] for r in naive_runs])
                               for s in NAIVE_STAGES}}
    ratio = ours["overlap"]["fps"]["median"] / naive["fps"]["median"]
    return {"scene": scene, "description": clip["description"], "frames": frames,
            "repeats": repeats, "gpen_video": ours, "naive": naive, "ratio": ratio}


def forward_vs_flops(worker_for, models: dict[str, int], repeats: int) -> list[dict]:
    """The restorer alone on random crops vs its FLOP count (from the same network config)."""
    import numpy as np

    from gpen_video.bench.measure import (cpu_conv_peak_flops, gpen_config_of,
                                          gpen_flops_per_face, load_average)

    rows = []
    for model, batch in models.items():
        worker = worker_for(model, batch)
        flops = gpen_flops_per_face(gpen_config_of(worker.template.model))
        size = worker.restorer.spec.size
        x = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)

        def timed():
            worker.restorer.restore(x)  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                worker.restorer.restore(x)
                times.append(time.perf_counter() - t)
            return times

        load = load_average()
        times = in_thread(timed)
        peak = cpu_conv_peak_flops()
        median = statistics.median(times)
        rows.append({"model": model, "batch": batch, "gflop_per_face": flops / 1e9,
                     "max_forward_batch": worker.restorer.spec.max_batch,
                     "times_s": times, "median_s": median, "ms_per_face": 1000 * median / batch,
                     "achieved_gflop_s": flops * batch / median / 1e9,
                     "cpu_peak_gflop_s": peak / 1e9,
                     "floor_ms_per_face": 1000 * flops / peak,
                     "floor_fraction": flops * batch / median / peak, "load_avg_1min": load})
        print(f"forward {model} batch {batch}: {median:.3f} s", flush=True)
        worker.close()
    return rows


def _ms(seconds: float | None, frames: int) -> str:
    return "—" if seconds is None else f"{1000 * seconds / max(1, frames):.0f}"


def markdown(result: dict) -> str:
    from gpen_video.bench.report import STAGE_LABELS
    from gpen_video.pipeline import STAGES

    m = result["machine"]
    v = result["versions"]
    lines = [
        BEGIN,
        "## End-to-end: gpen-video vs the naive per-frame pipeline, per stage "
        "(`benchmarks/end_to_end.py`, `gpen-video bench`)",
        "",
        f"Machine: {m['cpu']} (`/proc/cpuinfo` model name), {m['logical_cpus']} logical CPUs "
        f"shared with other jobs, torch {v.get('torch')} ({m.get('torch_threads')} threads), "
        f"PyAV {v.get('av')} ({v.get('ffmpeg')}), Python {v.get('python')}. GPU: none. "
        f"Date: {result['date']}. Command: `{result['command']}`. 1-minute load average "
        f"{result['load_range'][0]}–{result['load_range'][1]} during the runs (per run in the "
        "JSON; above 2 other work competed for the 2 CPUs).",
        "",
        "Clips synthesised from the FFHQ face `gpen_ffhq-10_00004.png` (moving faces over a "
        "panning background, H.264 CRF 18) — `gpen_video/bench/synth.py`. Model GPEN-BFR-256 "
        "with **random weights** of the real architecture (17.4 GFLOP/face; speed only, not a "
        f"restoration), torch fp32 on the CPU, batch 8 ({forward_note(result)}); detector "
        "RetinaFace MobileNet-0.25 (real "
        "weights, batch 4); temporal flow; encoder libx264 CRF 18 following the source. Each "
        "run starts with the network and detector loaded, after a warm-up run; fps = frames ÷ "
        "wall time from the first decoded frame to the closed output; medians over the "
        "repeats, spread min–max in the JSON. *naive*: `benchmarks/naive_pipeline.py` (one "
        "thread; detect batch 1; per-frame fit; restore batch 1; full-frame paste), same "
        "network object, detector weights, clip and encoder; its runs alternate with "
        "gpen-video's (overlap, serial, naive, overlap, …) so both see the same load.",
        "",
        "| scene | frames × repeats | gpen-video fps | naive fps | ratio | gpen-video faces/s | "
        "frame latency p50 / p95 (ms) | peak RSS MiB (gpen-video / naive) | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in result["scenes"]:
        ov = s["gpen_video"]["overlap"]
        nv = s["naive"]
        lines.append(
            f"| {s['description']} | {s['frames']} × {s['repeats']} | "
            f"{ov['fps']['median']:.3f} ({ov['fps']['min']:.3f}–{ov['fps']['max']:.3f}) | "
            f"{nv['fps']['median']:.3f} ({nv['fps']['min']:.3f}–{nv['fps']['max']:.3f}) | "
            f"**{s['ratio']:.2f}×** | {ov['faces_per_s']['median']:.2f} | "
            f"{ov['latency_p50_ms']['median']:.0f} / {ov['latency_p95_ms']['median']:.0f} | "
            f"{ov['peak_rss_mib']['median']:.0f} / {nv['peak_rss_mib']['median']:.0f} | "
            f"{ov['load_avg_1min']['min']}–{ov['load_avg_1min']['max']} |")
    lines.append(f"| GPU (any scene) | | {NO_GPU} | {NO_GPU} | | | | | |")
    lines += ["", "Per-stage time, milliseconds per frame (medians). *gpen-video serial*: the "
              "same pipeline with one stage working at a time (`pipeline.run(serial=True)`), so "
              "its stages add up to its wall time; *overlap busy*: each stage thread's busy "
              "time in the product's normal run (they run at once, so they add up to more than "
              "its wall time); *naive*: one thread, its stages add up by construction. *other*: "
              "wall − Σ stages (hand-overs, untimed code). Σ/wall: median over the runs of "
              "each run's ratio (the other columns are medians per column, so they need not add up "
              "exactly).", ""]
    header = "| scene | pipeline | " + " | ".join(STAGE_LABELS[s] for s in STAGES) + \
        " | other | Σ stages | wall | Σ/wall |"
    lines += [header, "| --- | --- | " + " | ".join("---:" for _ in STAGES) +
              " | ---: | ---: | ---: | ---: |"]
    for s in result["scenes"]:
        ours = s["gpen_video"]
        for label, mode, other_key in (("gpen-video serial", ours["serial"], "other_seconds"),
                                       ("gpen-video overlap busy", ours["overlap"],
                                        "idle_seconds"),
                                       ("naive", s["naive"], "other_seconds")):
            n = mode["frames"]
            stage = mode["stage_seconds"]
            cells = [_ms(stage[st]["median"], n) if st in stage else "—" for st in STAGES]
            total = sum(stage[st]["median"] for st in stage)
            wall = mode["seconds"]["median"]
            ratio = statistics.median(sum(r["stage_seconds"].values()) / r["seconds"]
                                      for r in mode["runs"])
            other = mode[other_key]["median"]
            lines.append(f"| {s['scene']} | {label} | " + " | ".join(cells) +
                         f" | {_ms(other, n)}{' (idle)' if other_key == 'idle_seconds' else ''}"
                         f" | {_ms(total, n)} | {_ms(wall, n)} | {ratio:.2f} |")
    lines += ["", "Reading it (this run): " + findings(result), ""]
    lines += ["GPEN forward alone (the restorer on random crops, in a worker thread, median "
              "after a warm-up) vs the same network's FLOP count (`torch.utils.flop_counter`, "
              "conv + matmul, 2 per multiply-add). Floor = FLOPs ÷ the CPU's fp32 peak measured "
              "in the same minute (best rate of a 4×256×64×64 3×3 convolution); in the "
              "pipeline "
              "the restore stage's rate is in the JSON (`restore_gflop_s`).", "",
              "| model | faces per call | GFLOP/face | ms/face measured | ms/face at the floor | "
              "achieved GFLOP/s | CPU peak GFLOP/s | fraction of floor | load |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["forward"]:
        passes = r.get("max_forward_batch")
        split = f" (passes of {passes})" if passes and passes < r["batch"] else ""
        lines.append(f"| {r['model']} | {r['batch']}{split} | {r['gflop_per_face']:.1f} | "
                     f"{r['ms_per_face']:.0f} | {r['floor_ms_per_face']:.0f} | "
                     f"{r['achieved_gflop_s']:.1f} | {r['cpu_peak_gflop_s']:.1f} | "
                     f"{100 * r['floor_fraction']:.0f} % | {r['load_avg_1min']} |")
    for r in result["forward"]:
        lines.append(f"| {r['model']} | GPU | {r['gflop_per_face']:.1f} | {NO_GPU} | | | | | |")
    lines += ["", "![per-stage time, 1080p one face](end_to_end_stages.png)", "",
              "Raw data: `benchmarks/results/end_to_end.json`. The same measurement for any "
              "clip or configuration: `gpen-video bench [INPUT] --json PATH --plot PNG`.", END]
    return "\n".join(lines)


def forward_note(result: dict) -> str:
    limits = {s["gpen_video"].get("max_forward_batch") for s in result["scenes"]}
    if limits == {1}:
        return ("the torch backend runs one face per forward pass on the CPU, where batch 1 "
                "is faster per face")
    return f"forward passes of up to {', '.join(str(x) for x in limits)} faces"


def findings(result: dict) -> str:
    """What the numbers say, computed from them (so a re-run cannot contradict its text)."""
    parts = []
    ratios = {s["scene"]: s["ratio"] for s in result["scenes"]}
    wins = [k for k, r in ratios.items() if r >= 1.0]
    losses = [k for k, r in ratios.items() if r < 1.0]
    lo, hi = min(ratios.values()), max(ratios.values())
    parts.append(f"gpen-video is {lo:.2f}–{hi:.2f}× the naive "
                 f"pipeline's fps on this 2-CPU machine (faster at {', '.join(wins) or 'none'}; "
                 f"slower at {', '.join(losses) or 'none'}).")
    per_face = []
    for s in result["scenes"]:
        faces_ours = max(1, s["gpen_video"]["serial"]["faces"])
        faces_naive = max(1, s["naive"]["faces"])
        ours = 1000 * s["gpen_video"]["serial"]["stage_seconds"]["restore"]["median"] / faces_ours
        naive = 1000 * s["naive"]["stage_seconds"]["restore"]["median"] / faces_naive
        per_face.append(f"{s['scene']} {ours:.0f} vs {naive:.0f}")
    parts.append("The network dominates. Restore time per face, gpen-video (serial run) vs "
                 "naive (batch 1), ms: " + "; ".join(per_face) + ". "
                 f"{forward_note(result)[0].upper()}{forward_note(result)[1:]}: "
                 "on this CPU batching faces across frames — what keeps a GPU busy — does not "
                 "lower the cost per face, so the gains left are batched detection, pasting "
                 "over each face's region and the overlap of decode/encode with the network.")
    for s in result["scenes"]:
        if s["scene"].startswith("4k"):
            ours = s["gpen_video"]["serial"]["stage_seconds"]["paste"]["median"]
            naive = s["naive"]["stage_seconds"]["paste"]["median"]
            parts.append(f"At 4K ({s['scene']}) the synthesised faces are ≈ 1,700 px tall, so "
                         f"pasting over each face's region is nearly a full-frame paste, and the "
                         f"product's bicubic paste costs {1000 * ours / s['frames']:.0f} ms/frame "
                         f"vs the naive bilinear full-frame paste's "
                         f"{1000 * naive / s['frames']:.0f}.")
            break
    parts.append("The overlapped run's busy times exceed the serial ones (restore, paste, "
                 "temporal) because its threads compete for the same 2 CPUs; on a GPU machine "
                 "the network leaves the CPUs and the overlap is what buys fps.")
    return " ".join(parts)


def update_results_md(section: str) -> None:
    write_section(RESULTS_MD, section, BEGIN, END)


def plot(result: dict) -> None:
    from gpen_video.bench.report import median_run, plot_stages, stage_ms_per_frame

    s = next((x for x in result["scenes"] if x["scene"] == "1080p:1"), result["scenes"][0])
    ours, naive = s["gpen_video"], s["naive"]
    serial, naive_run = median_run(ours["serial"]["runs"]), median_run(naive["runs"])
    ov_wall = 1000 * ours["overlap"]["seconds"]["median"] / ours["overlap"]["frames"]
    entries = [("gpen-video\n(stages one at a time)", stage_ms_per_frame(serial),
                [("overlapped wall (median)", ov_wall),
                 ("serial wall", 1000 * serial["seconds"] / serial["frames"])]),
               ("naive per-frame", stage_ms_per_frame(naive_run),
                [("wall", 1000 * naive_run["seconds"] / naive_run["frames"])])]
    m = result["machine"]
    loads = [r["load_avg_1min"] for runs in (ours["overlap"]["runs"], ours["serial"]["runs"],
                                             naive["runs"]) for r in runs]
    plot_stages(entries, PLOT,
                f"{s['description']}, GPEN-BFR-256 (random weights), CPU ({m['cpu']}, "
                f"{m['logical_cpus']} CPUs, 1-min load {min(loads)}–{max(loads)}): time per "
                "frame by stage, median runs")


def main() -> None:
    from gpen_video.bench.core import Worker
    from gpen_video.bench.measure import machine_info, versions
    from gpen_video.faces import FaceDetector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(PLAN))
    parser.add_argument("--repeats", type=int, default=None, help="override the plan's")
    parser.add_argument("--frames", type=int, default=None, help="override the plan's")
    parser.add_argument("--forward-repeats", type=int, default=3)
    parser.add_argument("--no-forward", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true",
                        help="print the markdown; write no JSON, RESULTS.md or plot")
    parser.add_argument("--from-json", action="store_true",
                        help="only redraw RESULTS.md's section and the plot from the JSON")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(RESULTS_JSON.read_text())
        update_results_md(markdown(result))
        plot(result)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpen_e2e_"))
    result = {"benchmark": "end_to_end",
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/end_to_end.py " + shlex.join(sys.argv[1:]),
              "machine": machine_info(), "versions": versions("torch"), "scenes": [],
              "forward": [], "gpu": NO_GPU}
    template = run_options("GPEN-BFR-256", 8)
    worker = Worker(template, "cpu")
    naive_detector = FaceDetector(replace(worker.template.detect, batch=1))
    for scene in args.scenes:
        frames, repeats = PLAN.get(scene, (12, 3))
        result["scenes"].append(bench_scene(worker, scene, args.frames or frames,
                                            args.repeats or repeats, workdir, naive_detector))
    worker.close()
    if not args.no_forward:
        result["forward"] = forward_vs_flops(
            lambda model, batch: Worker(run_options(model, batch), "cpu"),
            {"GPEN-BFR-256": 8, "GPEN-BFR-512": 1}, args.forward_repeats)
    loads = [r["load_avg_1min"] for s in result["scenes"]
             for runs in (s["gpen_video"]["overlap"]["runs"], s["gpen_video"]["serial"]["runs"],
                          s["naive"]["runs"]) for r in runs]
    loads += [r["load_avg_1min"] for r in result["forward"]]
    result["load_range"] = [min(loads), max(loads)]
    if args.no_write:
        print(markdown(result))
        return
    write_json(RESULTS_JSON, result, default=str)
    update_results_md(markdown(result))
    plot(result)
    print(json.dumps({s["scene"]: {"gpen_video_fps": s["gpen_video"]["overlap"]["fps"]["median"],
                                   "naive_fps": s["naive"]["fps"]["median"],
                                   "ratio": round(s["ratio"], 2)} for s in result["scenes"]}))


if __name__ == "__main__":
    main()
