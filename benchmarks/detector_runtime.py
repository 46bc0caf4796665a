"""The detector's network in torch and in onnxruntime on the CPU: time per forward, agreement.

    PYTHONPATH=. python benchmarks/detector_runtime.py [--threads 1]

RetinaFace MobileNet-0.25 (local weights) at the input shapes tracked detection uses (4 windows
of 224² and of 160²) and one 640×360 frame; onnxruntime runs the graph
:mod:`gpen_video.faces.network` exports in memory. Medians of 20 timed calls after 3 untimed;
"max diff" is the largest absolute difference of the three outputs. Writes
``benchmarks/results/detector_runtime.json`` and the ``detector_runtime`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpen_video.bench.measure import load_average  # noqa: E402
from gpen_video.bench.records import update_section, write_json  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
SHAPES = ((4, 3, 224, 224), (4, 3, 160, 160), (1, 3, 360, 640))


def _median_ms(call, repeats: int = 20) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from gpen_video.faces.detect import FaceDetector
    from gpen_video.options import DetectOptions

    torch.set_num_threads(args.threads)
    weights = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
    nets = {runtime: FaceDetector(DetectOptions(network="mobile0.25", device="cpu",
                                                weights=weights, runtime=runtime)).forward
            for runtime in ("torch", "onnxruntime")}
    loads = [load_average(None, float("nan"))]
    rows = []
    with torch.inference_mode():
        for shape in SHAPES:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 50
            row = {"shape": list(shape)}
            for runtime, net in nets.items():
                row[f"{runtime}_ms"] = round(_median_ms(lambda: net(x)), 2)
            ref, out = nets["torch"](x), nets["onnxruntime"](x)
            row["max_diff"] = max(float((a - b).abs().max()) for a, b in zip(ref, out))
            rows.append(row)
            print(row, flush=True)
    loads.append(load_average(None, float("nan")))
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, 2 cores",
              "threads": args.threads, "loads": loads, "rows": rows}
    write_json(REPO / "benchmarks" / "results" / "detector_runtime.json", report)
    update_section(REPO / "benchmarks" / "RESULTS.md", "detector_runtime", markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    loads = ", ".join(f"{x:.1f}" for x in report["loads"])
    lines = ["## Detector network: torch vs onnxruntime on the CPU "
             "(`benchmarks/detector_runtime.py`)", "",
             f"{report['date']}, {report['machine']}, {report['threads']} thread(s) for both "
             f"runtimes; 1-min load {loads}. RetinaFace MobileNet-0.25, medians of 20 calls. "
             "Tracked detection runs three passes per face (224², then 160² twice); the CPU "
             "default is onnxruntime (`DetectOptions.runtime=\"auto\"`).", "",
             "| input (N×C×H×W) | torch ms | onnxruntime ms | speed-up | max diff |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for row in report["rows"]:
        shape = "×".join(str(v) for v in row["shape"])
        lines.append(f"| {shape} | {row['torch_ms']:.1f} | {row['onnxruntime_ms']:.1f} | "
                     f"{row['torch_ms'] / row['onnxruntime_ms']:.2f}× | {row['max_diff']:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
