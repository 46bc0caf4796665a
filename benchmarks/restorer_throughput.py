"""Restorer throughput: faces/s of GPEN-BFR-256/512 per backend, precision and batch size.

    python benchmarks/restorer_throughput.py                 # everything this machine can run
    python benchmarks/restorer_throughput.py --models GPEN-BFR-256 --batches 1 8

(with the package installed, ``pip install -e .``, or ``PYTHONPATH=.`` from the checkout)

Rows: GPEN-BFR-256 and -512 (random weights of the real architectures: speed does not depend on
the values) × batch 1, 8, 32 × (backend, precision, device):

* torch fp32 on the CPU; onnxruntime fp32 on the CPU;
* torch fp32/fp16/bf16 on CUDA (channels_last); onnxruntime fp32 on CUDA;
* TensorRT fp16/bf16/fp32 engines (built and quality-gated on first use, cached in the engine
  folder; the build is not timed).

Each row is measured through the product's :class:`~gpen_video.backends.base.Restorer` API, the
way the pipeline calls it: CPU rows take numpy batches; GPU rows take CUDA tensors (crops made on
the GPU by :mod:`gpen_video.compose.torch_impl`), with ``torch.cuda.synchronize()`` around each timed
call. Warm-up runs, then ``--repeats`` timed runs; the median is reported.

Reported per row: faces/s, ms/face, peak GPU memory (torch allocator peak, plus the TensorRT
execution context's activation memory for engines), and the fraction of the compute floor:
achieved FLOP/s ÷ the device's peak FLOP/s at that precision (GPEN-BFR-512 is 276 GFLOP/face,
-256 is 17.4, counted by ``torch.utils.flop_counter``; on an H100 the fp16 floor is ≈ 0.3 ms per
512 face). The CPU peak is the best rate of a large fp32 convolution measured during the run
(at the start and after each CPU row: a shared machine depresses single measurements); GPU
peaks are the vendor's dense tensor-core figures (table below, by GPU name).

Rows that cannot run here are written too, marked "not measured" with the reason (no GPU lent,
no TensorRT, or the CPU cap: by default a CPU row runs only if one timed call is at most
``--cpu-gflop-cap`` = 300 GFLOP, i.e. GPEN-BFR-256 up to batch 8 and GPEN-BFR-512 at batch 1 —
the 512 at batch 32 would take about 5 minutes per call on this 2-core machine).

Writes ``benchmarks/results/restorer_throughput.json`` and rewrites its own section of
``benchmarks/RESULTS.md`` (between the ``restorer_throughput`` markers; others are left alone).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "benchmarks" / "results" / "restorer_throughput.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- restorer_throughput:begin -->", "<!-- restorer_throughput:end -->"

MODELS = ("GPEN-BFR-256", "GPEN-BFR-512")
BATCHES = (1, 8, 32)
# (backend, precision, device kind)
CONFIGS = (
    ("torch", "fp32", "cpu"),
    ("onnxruntime", "fp32", "cpu"),
    ("torch", "fp32", "cuda"),  # strict fp32 (TF32 off)
    ("torch", "tf32", "cuda"),  # fp32 weights, TF32 convolutions (torch's default on CUDA)
    ("torch", "fp16", "cuda"),
    ("torch", "bf16", "cuda"),
    ("onnxruntime", "fp32", "cuda"),
    ("tensorrt", "fp16", "cuda"),
    ("tensorrt", "bf16", "cuda"),
    ("tensorrt", "fp32", "cuda"),
)
NO_GPU = "not measured (no GPU lent to this task)"


def gflop_per_face(name: str) -> float:
    """Conv + matmul FLOPs of one face (2 per multiply-add), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from gpen_video.models.gpen import GPEN
    from gpen_video.models.weights import REGISTRY

    config = REGISTRY[name].gpen
    with torch.device("meta"):
        model = GPEN(config).requires_grad_(False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, config.size, config.size, device="meta"))
    return counter.get_total_flops() / 1e9


def cpu_peak_gflops(repeats: int = 5) -> float:
    """fp32 GFLOP/s of a large 3×3 convolution here (the CPU's practical peak for GPEN's ops)."""
    x = torch.rand(4, 256, 64, 64)
    w = torch.rand(256, 256, 3, 3)
    flops = 2 * 4 * 256 * 64 * 64 * 256 * 9
    times = []
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, w, padding=1)
            times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


def gpu_peak(device: str, precision: str) -> tuple[float | None, str]:
    """(peak GFLOP/s, how) of the GPU from its compute capability, SMs and clock; ``tf32`` rows
    against the TF32 tensor-core peak, strict ``fp32`` rows against the CUDA cores'."""
    from gpen_video.device.peak import cuda_peak

    with _tf32(precision == "tf32"):
        peak = cuda_peak(device, "fp32" if precision == "tf32" else precision)
    return (None if peak.flops is None else peak.flops / 1e9), peak.describe()


@contextlib.contextmanager
def _tf32(allowed: bool):
    """TF32 convolutions and matmuls on (``tf32`` rows) or off (strict ``fp32`` rows)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def make_restorer(backend: str, precision: str, device: str, model: str, batch: int,
                  engine_dir: Path | None, graphs: bool = True):
    from gpen_video.backends import backend_class
    from gpen_video.options import ModelOptions, RestoreOptions

    options = ModelOptions(name=model, random_weights=True, download=False)
    restore = RestoreOptions(backend=backend, device=device, precision=precision, batch=batch,
                             max_batch=max(BATCHES), engine_dir=engine_dir)
    if backend == "torch":  # speed only: no quality gate (its fallback would relabel the row)
        restore = RestoreOptions(device=device, batch=batch, cuda_graphs=bool(graphs),
                                 precision="fp32" if precision == "tf32" else precision)
        return backend_class(backend)(options, restore, quality_gate=False)
    return backend_class(backend)(options, restore)


def configs(args: argparse.Namespace) -> list[tuple[str, str, str, bool | None]]:
    """(backend, precision, device kind, CUDA graphs) of every row group asked for; torch on
    CUDA once per ``--graphs`` setting."""
    out = []
    for backend, precision, kind in CONFIGS:
        if args.backends and backend not in args.backends:
            continue
        if args.precisions and precision not in args.precisions:
            continue
        if backend == "torch" and kind == "cuda":
            out += [(backend, precision, kind, g == "on") for g in args.graphs]
        else:
            out.append((backend, precision, kind, None))
    return out


def time_restorer(restorer, batch: int, size: int, device: str, warmup: int, repeats: int
                  ) -> list[float]:
    x = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
    cuda = device.startswith("cuda")
    data = torch.from_numpy(x).to(device) if cuda else x
    times = []
    for i in range(warmup + repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        restorer.restore(data)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def skip_reason(backend: str, kind: str, gflop_call: float, cap: float) -> str | None:
    from gpen_video.backends import available_backends

    if kind == "cuda" and not torch.cuda.is_available():
        return NO_GPU
    if backend not in available_backends():
        return f"not measured ({backend} not installed here)"
    if backend == "onnxruntime" and kind == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "not measured (onnxruntime without the CUDA provider)"
    if kind == "cpu" and gflop_call > cap:
        return (f"not measured (CPU cap: {gflop_call:.0f} GFLOP per call > "
                f"--cpu-gflop-cap {cap:g})")
    return None


def run(args: argparse.Namespace) -> dict:
    from gpen_video.bench.measure import cpu_model, load_average

    # the CPU's peak: the best large-conv rate seen during the run (measured at the start and
    # after every CPU row; on a shared machine any single measurement may be depressed)
    cpu_peaks = [cpu_peak_gflops(repeats=10)]
    gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    flops = {name: gflop_per_face(name) for name in args.models}
    rows = []
    for name in args.models:
        from gpen_video.models.weights import REGISTRY

        size = REGISTRY[name].gpen.size
        for backend, precision, kind, graphs in configs(args):
            device = "cuda:0" if kind == "cuda" else "cpu"
            restorer = None
            for batch in args.batches:
                row = {"model": name, "size": size, "backend": backend,
                       "precision": precision, "device": gpu_name if kind == "cuda" else "cpu",
                       "batch": batch, "gflop_per_face": round(flops[name], 2),
                       "cuda_graphs": graphs}
                reason = skip_reason(backend, kind, flops[name] * batch, args.cpu_gflop_cap)
                if reason:
                    rows.append({**row, "status": reason})
                    print(f"{name} {backend} {precision} {kind} b{batch}: {reason}", flush=True)
                    continue
                try:
                    with _tf32(precision == "tf32"):  # graphs are captured in load(): inside
                        if restorer is None:
                            restorer = make_restorer(backend, precision, device, name,
                                                     max(args.batches), args.engine_dir, graphs)
                            restorer.load()
                        if kind == "cuda":
                            torch.cuda.reset_peak_memory_stats()
                        load_before = os.getloadavg()[0]
                        repeats = args.repeats if kind == "cuda" else args.cpu_repeats
                        times = time_restorer(restorer, batch, size, device, args.warmup,
                                              repeats)
                except Exception as exc:  # a backend failing on one row is itself a result
                    rows.append({**row, "status": f"failed: {type(exc).__name__}: {exc}"})
                    print(f"{name} {backend} {precision} {kind} b{batch}: failed: {exc}",
                          flush=True)
                    continue
                median = statistics.median(times)
                achieved = flops[name] * batch / median  # GFLOP/s
                if kind == "cpu":
                    cpu_peaks.append(cpu_peak_gflops(repeats=3))
                peak, how = (None, "measured conv") if kind == "cpu" else gpu_peak(device,
                                                                                  precision)
                memory = None
                if kind == "cuda":
                    memory = torch.cuda.max_memory_allocated()
                    runner = getattr(restorer, "_runner", None)
                    if runner is not None:
                        memory += runner.device_memory_bytes
                rows.append({
                    **row, "status": "measured",
                    "times_s": [round(t, 5) for t in times],
                    "median_s": round(median, 5),
                    "ms_per_face": round(1000 * median / batch, 3),
                    "faces_per_s": round(batch / median, 3),
                    "achieved_gflop_s": round(achieved, 1),
                    "peak_gflop_s": round(peak, 1) if peak else None,  # CPU: set below
                    "floor_fraction": round(achieved / peak, 4) if peak else None,
                    "peak_method": how,
                    "peak_gpu_memory_mib": round(memory / 2**20, 1) if memory else None,
                    "load_avg_1min_before": round(load_before, 2),
                    "load_avg_1min_after": load_average(),
                })
                print(f"{name} {backend} {precision} {kind} b{batch}: {batch / median:.3f} "
                      f"faces/s ({1000 * median / batch:.1f} ms/face)", flush=True)
            if restorer is not None:
                restorer.close()
                del restorer
                gc.collect()
    cpu_peak = max(cpu_peaks)
    for row in rows:
        if row["status"] == "measured" and row["device"] == "cpu":
            row["peak_gflop_s"] = round(cpu_peak, 1)
            row["floor_fraction"] = round(row["achieved_gflop_s"] / cpu_peak, 4)
    import onnxruntime

    return {
        "benchmark": "restorer_throughput",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + shlex.join(sys.argv),
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "gpu": gpu_name,
                    "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                     "tensorrt": _tensorrt_version()},
        "cpu_peak_gflop_s": round(cpu_peak, 1),
        "cpu_peak_measurements_gflop_s": [round(p, 1) for p in cpu_peaks],
        "weights": "random (real architecture; speed does not depend on the values)",
        "warmup": args.warmup,
        "cpu_gflop_cap": args.cpu_gflop_cap,
        "rows": rows,
    }


def _tensorrt_version() -> str | None:
    from gpen_video.engine.trt import tensorrt_present

    if not tensorrt_present():
        return None
    import tensorrt

    return tensorrt.__version__


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        BEGIN,
        "## Restorer throughput per backend and precision (`benchmarks/restorer_throughput.py`)",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs (torch {m['torch_threads']} "
        f"threads), GPU: {m['gpu'] or 'none'}. torch {report['versions']['torch']}, onnxruntime "
        f"{report['versions']['onnxruntime']}, TensorRT {report['versions']['tensorrt'] or '—'}."
        f" Date: {report['date']}. Command: `{report['command']}`.",
        "",
        "Random weights of the real architectures, through the `Restorer` API (CPU: numpy in and "
        "out; GPU: CUDA tensors in and out, synchronised). Median of the timed calls after "
        "warm-up. *Floor fraction* = achieved FLOP/s ÷ the device's peak at that precision "
        f"(CPU: {report['cpu_peak_gflop_s']} GFLOP/s, the best rate of a large fp32 conv "
        "measured during the run; GPUs: "
        "SMs × clock × the architecture's dense rate; fp32 rows with TF32 off, tf32 rows against the "
        "TF32 peak). The machine is shared: the load average of each row "
        "is in the JSON, so read CPU times as upper bounds.",
        "",
        "| model | backend | precision | device | batch | faces/s | ms/face | floor fraction "
        "| peak GPU MiB |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    cpu_loads = [r["load_avg_1min_before"] for r in report["rows"]
                 if r["status"] == "measured" and r["device"] == "cpu"]
    if cpu_loads:
        lines[-4] += (f" The 1-minute load average during the CPU rows was {min(cpu_loads):.1f}–"
                      f"{max(cpu_loads):.1f} on {m['logical_cpus']} logical CPUs.")
    grouped: dict[tuple, list] = {}
    for r in report["rows"]:  # rows not measured: one line per configuration
        if r["status"] != "measured":
            key = (r["model"], r["backend"], r["precision"], r["device"] or "GPU", r["status"])
            grouped.setdefault(key, []).append(str(r["batch"]))
    done: set[tuple] = set()
    for r in report["rows"]:
        if r["status"] != "measured":
            key = (r["model"], r["backend"], r["precision"], r["device"] or "GPU", r["status"])
            if key not in done:
                done.add(key)
                lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | "
                             f"{', '.join(grouped[key])} | {key[4]} | | | |")
            continue
        frac = f"{100 * r['floor_fraction']:.1f} %" if r["floor_fraction"] is not None else "?"
        mem = r["peak_gpu_memory_mib"] if r["peak_gpu_memory_mib"] is not None else "—"
        eager = " (eager)" if r.get("cuda_graphs") is False else ""
        lines.append(f"| {r['model']} | {r['backend']} | {r['precision']}{eager} | {r['device']} | "
                     f"{r['batch']} | {r['faces_per_s']:.3f} | {r['ms_per_face']:.1f} | {frac} | "
                     f"{mem} |")
    lines += ["", "Raw data: `benchmarks/results/restorer_throughput.json`.", END]
    return "\n".join(lines)


def update_results_md(section: str) -> None:
    from gpen_video.bench.records import write_section

    write_section(RESULTS_MD, section, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--backends", nargs="+", default=None,
                        choices=["torch", "onnxruntime", "tensorrt"])
    parser.add_argument("--precisions", nargs="+", default=None,
                        choices=["fp32", "tf32", "fp16", "bf16"])
    parser.add_argument("--graphs", nargs="+", default=["on"], choices=["on", "off"],
                        help="torch on CUDA: rows with CUDA graphs on and/or off")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per GPU row")
    parser.add_argument("--cpu-repeats", type=int, default=3, help="timed calls per CPU row")
    parser.add_argument("--cpu-gflop-cap", type=float, default=300.0,
                        help="skip CPU rows whose single call exceeds this many GFLOP")
    parser.add_argument("--engine-dir", type=Path, default=None,
                        help="ONNX/engine cache (default: the product's engine folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the RESULTS.md section from the saved JSON; measure nothing")
    args = parser.parse_args()
    if args.render_only:
        update_results_md(markdown(json.loads(RESULTS_JSON.read_text())))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args)
    if args.no_write:
        print(json.dumps(report, indent=1))
        return
    from gpen_video.bench.records import write_json

    write_json(RESULTS_JSON, report)
    update_results_md(markdown(report))
    print(f"wrote {RESULTS_JSON.relative_to(REPO)} and its section of "
          f"{RESULTS_MD.relative_to(REPO)}")


if __name__ == "__main__":
    main()
