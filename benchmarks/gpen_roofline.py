"""The floor a GPU measurement of GPEN is read against: FLOPs and bytes of every op of the
forward a backend runs, and the modeled time per face on an H100 and an H200 at their limits.

    python benchmarks/gpen_roofline.py                 # GPEN-BFR-256/512 × fp16/bf16/fp32 × b1/8/32
    python benchmarks/gpen_roofline.py --models GPEN-BFR-512 --batches 32

Graphs: ``today`` (the plain module, :mod:`gpen_video.models.gpen`, as the torch backend ran it
before the inference form), and the inference form (:mod:`gpen_video.models.inference`) with
uniform tactics: ``form`` (depthwise blurs, activation modulation: the plain arithmetic),
``form subpixel`` (blurs folded into dense 3×3 convs, activation modulation) and ``form
subpixel+weights`` (also style and demodulation folded into per-sample weights). Each in two
models (:mod:`gpen_video.bench.roofline`): eager (one kernel per op) and compiled (element-wise
ops between two matrix ops fused into one pass). Traced on the meta device: no GPU needed, a few
minutes on two cores. bf16 moves the same bytes as fp16 and has the same tensor peak on Hopper:
its rows are fp16's.

Writes ``benchmarks/results/gpen_roofline.json``; RESULTS.md quotes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch

from gpen_video.bench.roofline import MODELED_GPUS, modeled_seconds, trace_forward
from gpen_video.models.inference import inference_form, uniform_plan
from gpen_video.models.load import build_gpen
from gpen_video.models.weights import REGISTRY

REPO = Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "benchmarks" / "results" / "gpen_roofline.json"
DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def graphs(name: str):
    """(label, module on the meta device) for each graph of the module docstring."""
    net = build_gpen(REGISTRY[name].gpen)
    found = []
    for label, blur, modulation in (("form", "depthwise", "activations"),
                                    ("form subpixel", "subpixel", "activations"),
                                    ("form subpixel+weights", "subpixel", "weights")):
        form = inference_form(net)  # built from the real weights, before anything moves to meta
        form.apply_plan(uniform_plan(form, blur, modulation))
        found.append((label, form))
    return [("today", net), *found]


def markdown(rows: list[dict], gpu: str = "H100", precision: str = "fp16") -> str:
    """The RESULTS.md table: modeled ms/face on ``gpu`` at ``precision``, eager and compiled,
    per model, graph and batch."""
    batches = sorted({r["batch"] for r in rows})
    lines = ["| model | graph | GFLOP/face | " + " | ".join(
        f"b{b} eager | b{b} compiled" for b in batches) + " |",
        "| --- | --- | ---: |" + " ---: | ---: |" * len(batches)]
    keys = []
    for r in rows:
        if r["precision"] == precision and (r["model"], r["graph"]) not in keys:
            keys.append((r["model"], r["graph"]))
    for model, graph in keys:
        cells = []
        flops = 0.0
        for b in batches:
            r = next(x for x in rows if (x["model"], x["graph"], x["precision"], x["batch"])
                     == (model, graph, precision, b))
            flops = r["gflop_per_face"]
            cells += [f"{r[f'{gpu}_eager_ms']:.3f}", f"{r[f'{gpu}_compiled_ms']:.3f}"]
        lines.append(f"| {model} | {graph} | {flops:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["GPEN-BFR-256", "GPEN-BFR-512"],
                        help="registry names (default: GPEN-BFR-256 GPEN-BFR-512)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32],
                        help="batch sizes (default: 1 8 32)")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON,
                        help=f"where to write the results (default: {RESULTS_JSON})")
    args = parser.parse_args(argv)
    rows = []
    start = time.perf_counter()
    for name in args.models:
        size = REGISTRY[name].gpen.size
        for label, module in graphs(name):
            for precision, dtype in DTYPES.items():
                meta = module.to(device="meta", dtype=dtype)
                for batch in args.batches:
                    x = torch.empty(batch, 3, size, size, device="meta", dtype=dtype)
                    trace = trace_forward(meta, x.contiguous(memory_format=torch.channels_last))
                    row = {"model": name, "graph": label, "precision": precision, "batch": batch,
                           "gflop_per_face": trace.flops / batch / 1e9,
                           "gb_per_face_eager": trace.bytes_eager() / batch / 1e9}
                    for gpu_name, gpu in MODELED_GPUS.items():
                        peak = gpu.peak(precision)
                        for compiled in (False, True):
                            ms = modeled_seconds(trace, peak, gpu.bandwidth, compiled) / batch
                            row[f"{gpu_name}_{'compiled' if compiled else 'eager'}_ms"] = ms * 1e3
                    rows.append(row)
                    print(f"{name} {label:<22} {precision} b{batch:<3} "
                          f"{row['gflop_per_face']:7.1f} GFLOP {row['gb_per_face_eager']:6.2f} GB "
                          f"H100 eager {row['H100_eager_ms']:.3f} compiled "
                          f"{row['H100_compiled_ms']:.3f} ms/face", flush=True)
                    if precision == "fp16":
                        rows.append(dict(row, precision="bf16"))
    record = {"benchmark": "gpen_roofline", "date": dt.date.today().isoformat(),
              "gpus": {k: {"name": g.name, "fp16_tflops": g.peak("fp16") / 1e12,
                           "tf32_tflops": g.peak("fp32") / 1e12, "bandwidth_tb_s": g.bandwidth / 1e12}
                       for k, g in MODELED_GPUS.items()},
              "torch": torch.__version__, "seconds": round(time.perf_counter() - start, 1),
              "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1))
    print(markdown(rows))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
