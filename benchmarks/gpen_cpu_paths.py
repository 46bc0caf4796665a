"""Restore time per face of every CPU path of GPEN, in one interleaved run, against the CPU's
floor measured in the same run.

    python benchmarks/gpen_cpu_paths.py                          # GPEN-BFR-256 and -512, batch 1
    python benchmarks/gpen_cpu_paths.py --models GPEN-BFR-256 --rounds 9

Paths (random weights of the real architecture; plumbing and speed only):

* ``torch plain`` — the plain module eagerly (the torch backend before the inference form);
* ``onnxruntime`` — the ONNX export in onnxruntime (what ``--backend auto`` took on a CPU before);
* ``torch form`` — the inference form eagerly, plain tactics; ``torch form timed`` — with the
  tactics timed on this CPU;
* ``compiled plain`` — the Inductor engine of the form with plain tactics;
* ``auto`` — what ``--backend auto`` builds now on a CPU with a C++ compiler (compiled torch,
  tactics timed).

Each through the product's restorer (``restore()`` on a 1×3×S×S float32 batch: the model I/O
mapping included), except ``torch plain`` (the module's forward). Rounds run every path once, in
turn, after a warm-up; medians are reported. The floor: the dense convolutions and matmuls of the
plain graph (its FLOPs) at the rate a large convolution reaches on this CPU in the same run
(``--floor-shape``), and the plain graph's dense convolutions each timed alone (what is left when
every other op is free). Compiled engines are built first (their build and load times reported)
into a scratch engine folder.

Writes ``benchmarks/results/gpen_cpu_paths.json``; RESULTS.md quotes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gpen_video.bench.measure import load_average
from gpen_video.bench.roofline import trace_forward
from gpen_video.models.load import build_gpen
from gpen_video.models.weights import REGISTRY
from gpen_video.options import ModelOptions, RestoreOptions

REPO = Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "benchmarks" / "results" / "gpen_cpu_paths.json"


def conv_rate(shape: tuple[int, int, int], seconds: float = 1.0) -> float:
    """FLOP/s of one large fp32 3×3 convolution (C→C at H×W, channels_last) on this CPU."""
    c, h, w = shape
    x = torch.randn(1, c, h, w).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c, c, 3, 3).contiguous(memory_format=torch.channels_last)
    flops = 2.0 * c * c * 9 * h * w
    times = []
    with torch.inference_mode():
        F.conv2d(x, weight, padding=1)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(times) < 5:
            start = time.perf_counter()
            F.conv2d(x, weight, padding=1)
            times.append(time.perf_counter() - start)
    return flops / statistics.median(times)


def dense_conv_seconds(net: torch.nn.Module, size: int, repeats: int = 3) -> tuple[float, float]:
    """(FLOPs of the plain graph's dense convs and matmuls, seconds of its dense convs each run
    alone at their shapes): the network with every other op free."""
    meta = build_gpen(net.config).to("meta")
    trace = trace_forward(meta, torch.empty(1, 3, size, size, device="meta"))
    flops = sum(op.flops for op in trace.ops if op.matrix)
    calls = []

    class Capture(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in (F.conv2d, F.conv_transpose2d):
                weight = args[1]
                groups = kwargs.get("groups", args[6] if len(args) > 6 else 1)
                if groups == 1:
                    calls.append((func, tuple(args[0].shape), weight.detach().clone(),
                                  {k: v for k, v in kwargs.items()}, args[2:]))
            return func(*args, **kwargs)

    x = torch.rand(1, 3, size, size) * 2 - 1
    with torch.inference_mode(), Capture():
        net(x)
    total = []
    with torch.inference_mode():
        inputs = [torch.randn(shape).contiguous(memory_format=torch.channels_last)
                  for _, shape, *_ in calls]
        for _ in range(repeats):
            start = time.perf_counter()
            for (func, _, weight, kwargs, rest), xi in zip(calls, inputs):
                func(xi, weight, *rest, **kwargs)
            total.append(time.perf_counter() - start)
    return flops, statistics.median(total)


def make_paths(name: str, folder: Path) -> tuple[dict, dict]:
    """The callables of the module docstring (each takes a 1×3×S×S float32 batch in [0, 1]) and
    the build/load record of the compiled ones."""
    from gpen_video.backends import create_restorer
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer
    from gpen_video.backends.torch_backend import TorchRestorer, to_channels_last

    model = ModelOptions(name=name, random_weights=True)
    net = to_channels_last(build_gpen(REGISTRY[name].gpen))

    def plain(batch):
        x = torch.from_numpy(batch) * 2 - 1
        with torch.inference_mode():
            return net(x.contiguous(memory_format=torch.channels_last))

    def restorer(**kw):
        options = RestoreOptions(device="cpu", engine_dir=folder, **kw)
        return TorchRestorer(model, options)

    builds = {}
    paths = {"torch plain": plain,
             "onnxruntime": OnnxRuntimeRestorer(model, RestoreOptions(device="cpu",
                                                                      engine_dir=folder)),
             "torch form": restorer(compile="off", tactics="plain"),
             "torch form timed": restorer(compile="off", tactics="timed"),
             "compiled plain": restorer(compile="on", tactics="plain"),
             "auto": create_restorer(model, RestoreOptions(backend="auto", engine_dir=folder))}
    for label, path in paths.items():
        if hasattr(path, "load"):
            start = time.perf_counter()
            path.load()
            builds[label] = {"first_load_seconds": round(time.perf_counter() - start, 2),
                             "describe": path.describe()}
            engine = getattr(path, "engine", None)
            if engine is not None:
                builds[label].update(engine=engine.path.name, built=engine.built,
                                     build_seconds=round(engine.build_seconds, 2))
                again = restorer(compile="on", tactics="timed" if label == "auto" else "plain")
                start = time.perf_counter()
                again.load()
                builds[label].update(second_load_seconds=round(time.perf_counter() - start, 3),
                                     second_load_package_seconds=round(
                                         again.engine.load_seconds, 3))
            if getattr(path, "tactics", None) is not None:
                builds[label]["tactics"] = path.tactics.plan.as_dict()
    return {k: (v.restore if hasattr(v, "restore") else v) for k, v in paths.items()}, builds


def markdown(record: dict) -> str:
    """The RESULTS.md table of a run: ms per face per path and model, × onnxruntime, the
    floor."""
    models = list(record["models"])
    lines = ["| path | " + " | ".join(f"{m} ms/face" for m in models) + " | × onnxruntime |",
             "| --- |" + " ---: |" * (len(models) + 1)]
    for path in record["models"][models[0]]["median_ms"]:
        cells = [f"{record['models'][m]['median_ms'][path]:.0f}" for m in models]
        ratio = " / ".join(f"{record['models'][m]['median_ms']['onnxruntime'] / record['models'][m]['median_ms'][path]:.2f}"
                           for m in models)
        lines.append(f"| {path} | " + " | ".join(cells) + f" | {ratio} |")
    for label, key in (("floor: dense FLOPs at a large conv's rate", "floor_ms"),
                       ("dense convs of the plain graph, each alone", "dense_convs_alone_ms")):
        lines.append(f"| {label} | " + " | ".join(f"{record['models'][m][key]:.0f}"
                                                  for m in models) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["GPEN-BFR-256", "GPEN-BFR-512"],
                        help="registry names (default: GPEN-BFR-256 GPEN-BFR-512)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="timed rounds (default: 9 for 256, 5 for 512)")
    parser.add_argument("--engine-dir", type=Path, default=None,
                        help="engine folder (default: a scratch folder, so engines are built)")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON,
                        help=f"where to write the results (default: {RESULTS_JSON})")
    args = parser.parse_args(argv)
    folder = args.engine_dir or Path(tempfile.mkdtemp(prefix="gpen-cpu-paths-"))
    record = {"benchmark": "gpen_cpu_paths", "date": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="minutes"), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "models": {}}
    from gpen_video.engine.tactics import device_model

    record["cpu"] = device_model("cpu")
    for name in args.models:
        size = REGISTRY[name].gpen.size
        rounds = args.rounds or (9 if size <= 256 else 5)
        paths, builds = make_paths(name, folder)
        batch = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        times: dict[str, list[float]] = {k: [] for k in paths}
        for run in paths.values():
            run(batch)  # warm-up
        load_before = load_average()
        flops, convs_alone = dense_conv_seconds(build_gpen(REGISTRY[name].gpen), size)
        rate = conv_rate((256, 64, 64))
        for _ in range(rounds):
            for label, run in paths.items():
                start = time.perf_counter()
                run(batch)
                times[label].append(time.perf_counter() - start)
        rate = max(rate, conv_rate((256, 64, 64)))
        medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        floor_ms = flops / rate * 1e3
        row = {"rounds": rounds, "median_ms": medians,
               "all_ms": {k: [round(t * 1e3, 2) for t in v] for k, v in times.items()},
               "dense_gflop": flops / 1e9, "large_conv_gflop_s": rate / 1e9,
               "floor_ms": floor_ms, "dense_convs_alone_ms": convs_alone * 1e3,
               "auto_vs_onnxruntime": medians["onnxruntime"] / medians["auto"],
               "floor_fraction": floor_ms / medians["auto"],
               "convs_alone_fraction": convs_alone * 1e3 / medians["auto"],
               "builds": builds, "load_average": [load_before, load_average()]}
        record["models"][name] = row
        print(f"{name} batch 1, {rounds} rounds (load {load_before}):")
        for label, ms in medians.items():
            print(f"  {label:<18} {ms:9.1f} ms/face")
        print(f"  floor: {flops / 1e9:.1f} GFLOP at {rate / 1e9:.0f} GFLOP/s = {floor_ms:.1f} ms; "
              f"dense convs alone {convs_alone * 1e3:.1f} ms; auto = "
              f"{row['auto_vs_onnxruntime']:.2f}x onnxruntime, {row['floor_fraction']:.0%} of the "
              f"floor, {row['convs_alone_fraction']:.0%} of the convs-alone time", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1))
    print(markdown(record))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
