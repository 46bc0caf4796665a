"""The FP16 graph a TensorRT engine is built from, judged on the CPU like the quality gate judges
an engine.

    python benchmarks/fp16_graph.py                          # GPEN-BFR-256 and -512
    python benchmarks/fp16_graph.py --models GPEN-BFR-256

(with the package installed, ``pip install -e ".[onnx]"``, or ``PYTHONPATH=.`` from the checkout)

For each model (random weights of the real architecture, seed 0 — the official weights cannot
be downloaded here, so this measures the rounding the graph adds, not how sensitive the trained
network is) and each FP32-keeping policy of :mod:`gpen_video.engine.precision`:

* the plan: how many nodes stay FP32 and what share of the convolution work they hold;
* the rewrite (:func:`gpen_video.engine.mixed.mixed_onnx`): seconds and file size;
* the gate's numbers — worst-face PSNR and max abs error of the FP16 graph (run by onnxruntime
  on the CPU, which computes FP16 tensors through FP32 kernels: the storage rounding is real, the
  accumulation is FP32 as on tensor cores) against FP32 torch on the six real gate crops.

Two baselines with the same crops: every float node in FP16 (nothing kept), and
``onnxruntime.transformers.float16`` given the ``style`` policy's nodes as its block list (it
casts around each kept node, so tensors between two kept nodes are still rounded to FP16).

Writes ``benchmarks/results/fp16_graph.json`` and its section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer
from gpen_video.backends.torch_backend import TorchRestorer
from gpen_video.bench.records import update_section, write_json
from gpen_video.engine.gate import GATE_PSNR_DB, compare, load_gate_faces
from gpen_video.engine.mixed import mixed_onnx, to_mixed_precision
from gpen_video.engine.onnx_cache import cached_onnx
from gpen_video.engine.precision import FP16_POLICIES, plan_onnx
from gpen_video.models.load import build_gpen
from gpen_video.models.weights import REGISTRY
from gpen_video.options import RestoreOptions

REPO = Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "benchmarks" / "results" / "fp16_graph.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"


def gate_numbers(onnx_path: Path, reference_out: np.ndarray, faces: np.ndarray) -> dict:
    with OnnxRuntimeRestorer(onnx_path, RestoreOptions(device="cpu")) as candidate:
        start = time.perf_counter()
        out = candidate.restore(faces)
        seconds = time.perf_counter() - start
    report = compare(out, reference_out)
    return {"worst_psnr_db": round(report.psnr_db, 2),
            "max_abs_error": float(f"{report.max_abs_error:.3g}"),
            "passes_gate": bool(report.passed), "cpu_seconds_per_face": round(
                seconds / len(faces), 2)}


def measure(model: str, folder: Path, faces_dir: Path | None) -> list[dict]:
    import onnx

    config = REGISTRY[model].gpen
    net = build_gpen(config, seed=0)
    faces = load_gate_faces(config.size, faces_dir)
    with TorchRestorer(net, RestoreOptions(device="cpu"), size=config.size) as reference:
        reference_out = reference.restore(faces)
    fp32_path = cached_onnx(net, folder, label=model)
    rows = [{"model": model, "graph": "fp32 export", "kept_fp32_nodes": None,
             "kept_conv_share": None, "rewrite_seconds": None,
             "file_mb": round(fp32_path.stat().st_size / 1e6, 1),
             **gate_numbers(fp32_path, reference_out, faces)}]
    plans = {}
    for policy in FP16_POLICIES:
        plan = plans[policy.name] = plan_onnx(fp32_path, policy)
        start = time.perf_counter()
        path = mixed_onnx(fp32_path, "fp16", policy)
        rows.append({"model": model, "graph": f"fp16, kept in FP32: {policy.name}",
                     "kept_fp32_nodes": len(plan.pinned),
                     "kept_conv_share": round(plan.pinned_share, 4),
                     "rewrite_seconds": round(time.perf_counter() - start, 1),
                     "file_mb": round(path.stat().st_size / 1e6, 1),
                     **gate_numbers(path, reference_out, faces)})
        print(rows[-1], flush=True)
    style = plans["style"]
    everything = folder / f"{model}.fp16-nothing-kept.onnx"
    onnx.save(to_mixed_precision(onnx.load(str(fp32_path)), "fp16", style.floats),
              str(everything))
    rows.append({"model": model, "graph": "fp16, nothing kept", "kept_fp32_nodes": 0,
                 "kept_conv_share": 0.0, "rewrite_seconds": None,
                 "file_mb": round(everything.stat().st_size / 1e6, 1),
                 **gate_numbers(everything, reference_out, faces)})
    try:
        from onnxruntime.transformers import float16 as ort_float16
    except ImportError:
        return rows
    per_node = folder / f"{model}.fp16-ort-converter.onnx"
    onnx.save(ort_float16.convert_float_to_float16(
        onnx.load(str(fp32_path)), keep_io_types=True, node_block_list=sorted(style.pinned),
        op_block_list=[]), str(per_node))
    rows.append({"model": model, "graph": "fp16, onnxruntime.transformers.float16, "
                                          "style nodes blocked",
                 "kept_fp32_nodes": len(style.pinned), "kept_conv_share": 0.0,
                 "rewrite_seconds": None, "file_mb": round(per_node.stat().st_size / 1e6, 1),
                 **gate_numbers(per_node, reference_out, faces)})
    return rows


def markdown(record: dict) -> str:
    lines = [
        "## FP16 graph for TensorRT, judged on the CPU (`benchmarks/fp16_graph.py`)",
        "",
        f"Machine: {record['machine']}. onnxruntime {record['onnxruntime']}, onnx "
        f"{record['onnx']}. Date: {record['date']}. Command: `{record['command']}`.",
        "",
        "Random weights of the real architectures (seed 0): this measures the rounding the "
        "rewritten graph adds, not the trained network's sensitivity. Gate numbers: worst face "
        f"of the six real gate crops against FP32 torch (threshold {GATE_PSNR_DB:.0f} dB). "
        "onnxruntime runs FP16 tensors through FP32 kernels on this CPU, so the storage rounding "
        "is real and the accumulation FP32, as on tensor cores; CPU seconds are not a speed "
        "figure for the GPU. Peak memory of the whole run (a plan runs the model at batch 1 "
        "with every activation fetched, in (size/256)² shares): "
        f"{record['peak_rss_mib']:.0f} MiB.",
        "",
        "| model | graph | kept FP32 nodes | their share of conv work | rewrite s | file MB "
        "| worst-face PSNR dB | max abs error | gate |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in record["rows"]:
        share = "—" if r["kept_conv_share"] is None else f"{100 * r['kept_conv_share']:.1f} %"
        lines.append(
            f"| {r['model']} | {r['graph']} | "
            f"{'—' if r['kept_fp32_nodes'] is None else r['kept_fp32_nodes']} | {share} | "
            f"{'—' if r['rewrite_seconds'] is None else r['rewrite_seconds']} | {r['file_mb']} | "
            f"{r['worst_psnr_db']} | {r['max_abs_error']} | "
            f"{'passes' if r['passes_gate'] else 'rejected'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import onnx
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["GPEN-BFR-256", "GPEN-BFR-512"])
    parser.add_argument("--gate-images", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpen-fp16-graph-") as tmp:
        for model in args.models:
            rows.extend(measure(model, Path(tmp), args.gate_images))
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    record = {
        "machine": f"{cpu}, {os.cpu_count()} logical CPUs, no GPU",
        "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/fp16_graph.py",
                                                                 *(argv or sys.argv[1:])]),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }
    print(markdown(record))
    if not args.no_write:
        write_json(RESULTS_JSON, record)
        update_section(RESULTS_MD, "fp16_graph", markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
