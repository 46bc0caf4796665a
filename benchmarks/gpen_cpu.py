"""CPU fp32 forward time of the GPEN network (random weights, real architecture).

    python benchmarks/gpen_cpu.py                       # GPEN-BFR-256 and -512, batch 1 and 4
    python benchmarks/gpen_cpu.py --models GPEN-BFR-256 --batches 1 --repeats 3

(with the package installed, ``pip install -e .``, or ``PYTHONPATH=.`` from the checkout)

Writes ``benchmarks/results/gpen_cpu.json`` and rewrites its own section of
``benchmarks/RESULTS.md`` (between the ``gpen_cpu`` markers; other sections are left alone).

FLOPs are counted with ``torch.utils.flop_counter`` on the actual forward (convolutions,
transposed convolutions and matmuls, 2 FLOP per multiply-add; element-wise ops not counted).
Times: warm-up runs, then ``--repeats`` timed runs under ``torch.inference_mode``; the median is
reported (faces/s and GFLOP/s come from it), with the best run and the load average beside it
because this machine is shared (``--wait-quiet`` waits for a calm moment before each row). The CPU path is fp32 only (half precision convolutions are ~250× slower on this CPU).
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
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gpen_video.bench.measure import load_average
from gpen_video.bench.records import write_json, write_section
from gpen_video.models.load import build_gpen
from gpen_video.models.weights import REGISTRY

REPO = Path(__file__).resolve().parents[1]

RESULTS_JSON = REPO / "benchmarks" / "results" / "gpen_cpu.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- gpen_cpu:begin -->", "<!-- gpen_cpu:end -->"


def cpu_description() -> dict:
    """CPU model, core count and vector extensions, from /proc/cpuinfo where available."""
    info = {"model": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["model"] = value.strip()
        if key.strip() == "flags":
            flags = set(value.split())
            info["avx2"] = "avx2" in flags
            info["avx512f"] = "avx512f" in flags
            break
    return info


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops()


def time_forward(model: torch.nn.Module, x: torch.Tensor, warmup: int, repeats: int
                 ) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each timed forward (after ``warmup`` untimed ones)."""
    walls, cpus = [], []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            model(x)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return walls, cpus


def wait_until_quiet(threshold: float, limit_s: float) -> float:
    """Sleep until the 1-minute load average is below ``threshold`` (at most ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(10)
    return os.getloadavg()[0]


def run(models: list[str], batches: list[int], warmup: int, repeats: dict[str, int],
        quiet: tuple[float, float] | None = None) -> dict:
    results = []
    for name in models:
        config = REGISTRY[name].gpen
        model = build_gpen(config, seed=0)
        params = sum(p.numel() for p in model.parameters())
        size = config.size
        flops_per_face = count_flops(model, torch.zeros(1, 3, size, size))
        for batch in batches:
            x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
            if quiet is not None:
                wait_until_quiet(*quiet)
            load_before = os.getloadavg()[0]
            times, cpu_times = time_forward(model, x, warmup, repeats.get(name, 3))
            median = statistics.median(times)
            results.append({
                "model": name,
                "size": size,
                "channel_multiplier": config.channel_multiplier,
                "narrow": config.narrow,
                "params_m": round(params / 1e6, 2),
                "gflop_per_face": round(flops_per_face / 1e9, 2),
                "batch": batch,
                "times_s": [round(t, 4) for t in times],
                "median_s": round(median, 4),
                "min_s": round(min(times), 4),
                "cpu_s_median": round(statistics.median(cpu_times), 3),
                "ms_per_face": round(1000 * median / batch, 1),
                "faces_per_s": round(batch / median, 3),
                "achieved_gflop_s": round(flops_per_face * batch / median / 1e9, 1),
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "command": "python " + shlex.join(sys.argv),
                "load_avg_1min_before": round(load_before, 2),
                "load_avg_1min_after": load_average(),
            })
            print(f"{name} batch {batch}: median {median:.3f} s ({batch / median:.2f} faces/s, "
                  f"{flops_per_face * batch / median / 1e9:.0f} GFLOP/s)", flush=True)
        del model
    return {
        "benchmark": "gpen_cpu",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + shlex.join(sys.argv),
        "machine": {**cpu_description(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version()},
        "torch": torch.__version__,
        "dtype": "float32",
        "device": "cpu",
        "weights": "random (real architecture; speed does not depend on the values)",
        "warmup": warmup,
        "results": results,
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    vec = "AVX-512" if m.get("avx512f") else ("AVX2" if m.get("avx2") else "no AVX2")
    lines = [
        BEGIN,
        "## GPEN network, CPU fp32 forward (`benchmarks/gpen_cpu.py`)",
        "",
        f"Machine: {m['model']}, {m['logical_cpus']} logical CPUs ({vec}), torch "
        f"{report['torch']} ({m['torch_threads']} threads), Python {m['python']}. "
        f"Date: {report['date']} (each row's own date and load average are in the JSON). "
        f"Command: `{report['command']}`.",
        "",
        "Random weights of the real architectures; FLOPs counted by `torch.utils.flop_counter` "
        "(conv + matmul, 2 per MAC). Median of the timed runs after warm-up. This machine is "
        "shared: the last column is the 1-minute load average around each row (2 cores; above 2 "
        "other work was competing), so treat the times as upper bounds.",
        "",
        "| model | params (M) | GFLOP/face | batch | median forward (s) | best (s) | ms/face "
        "| faces/s | achieved GFLOP/s | load avg before → after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['model']} | {r['params_m']} | {r['gflop_per_face']} | {r['batch']} | "
            f"{r['median_s']:.3f} | {r['min_s']:.3f} | {r['ms_per_face']} | {r['faces_per_s']:.2f} | "
            f"{r['achieved_gflop_s']} | {r['load_avg_1min_before']} → {r['load_avg_1min_after']} |"
        )
    lines += ["", *reading(report["results"]), "", "Raw data: `benchmarks/results/gpen_cpu.json`.",
              END]
    return "\n".join(lines)


def merged_with_previous(report: dict) -> dict:
    """Keep earlier rows (same machine and torch) for the model/batch pairs not measured now."""
    try:
        previous = json.loads(RESULTS_JSON.read_text())
    except (OSError, ValueError):
        return report
    if previous.get("machine") != report["machine"] or previous.get("torch") != report["torch"]:
        return report
    fresh = {(r["model"], r["batch"]) for r in report["results"]}
    kept = [r for r in previous.get("results", []) if (r["model"], r["batch"]) not in fresh]
    rows = sorted(kept + report["results"], key=lambda r: (r["size"], r["batch"]))
    commands = list(dict.fromkeys(r.get("command", previous.get("command", "")) for r in rows))
    return {**report, "command": " ; ".join(c for c in commands if c), "results": rows}


def reading(rows: list[dict]) -> list[str]:
    """A few sentences computed from the rows (so they stay true when the rows change)."""
    notes = []
    by_model: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["batch"]] = r
    for name, batches in by_model.items():
        if 1 in batches and len(batches) > 1:
            big = max(batches)
            ratio = batches[big]["ms_per_face"] / batches[1]["ms_per_face"]
            notes.append(f"{name}: batch {big} costs {ratio:.2f}× the time per face of batch 1.")
    notes.append(
        "FLOPs are exact (they do not depend on the machine); times on this shared 2-core VM "
        "vary a lot: the same rows measured at busier moments took 2–15× longer, even with a "
        "low load average inside the VM: re-measure with `--wait-quiet` and check that the runs "
        "of a row (in the JSON) agree.")
    return [" ".join(notes)]


def update_results_md(section: str) -> None:
    write_section(RESULTS_MD, section, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["GPEN-BFR-256", "GPEN-BFR-512"],
                        choices=[n for n, s in REGISTRY.items() if s.kind == "gpen"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per row (default: 5 for 256, 3 for larger models)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--wait-quiet", type=float, nargs=2, default=None,
                        metavar=("LOAD", "SECONDS"),
                        help="before each row, wait (at most SECONDS) for the 1-minute load "
                             "average to drop below LOAD: for shared machines")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--replace", action="store_true",
                        help="drop earlier rows instead of keeping those not measured again")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = {name: args.repeats or (5 if REGISTRY[name].gpen.size <= 256 else 3)
               for name in args.models}
    report = run(args.models, args.batches, args.warmup, repeats,
                 tuple(args.wait_quiet) if args.wait_quiet else None)
    if args.no_write:
        print(json.dumps(report, indent=1))
        return
    if not args.replace:
        report = merged_with_previous(report)
    write_json(RESULTS_JSON, report)
    update_results_md(markdown(report))
    print(f"wrote {RESULTS_JSON.relative_to(REPO)} and its section of "
          f"{RESULTS_MD.relative_to(REPO)}")


if __name__ == "__main__":
    main()
