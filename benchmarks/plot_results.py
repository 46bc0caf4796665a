"""The pictures of ``benchmarks/RESULTS.md``, drawn from the kept results (no measuring).

    PYTHONPATH=. python benchmarks/plot_results.py      # needs matplotlib

* ``benchmarks/stages_per_frame.png``: time per frame by stage, serial breakdown (the stages
  one at a time, so the bar adds up to the frame's wall time), for the latest `gpen-video bench`
  runs of ``results/bench_cpu.json`` and ``results/bench_h200.json``;
* ``benchmarks/faces_per_second.png``: GPEN faces/s against the batch size on the lent H200
  (torch, CUDA graphs on), per model and precision, from ``results/restorer_throughput_h200.json``,
  with this CPU's batch-1 paths for scale — compiled torch (``--backend auto``), onnxruntime and
  eager torch, all from the one interleaved run of ``results/gpen_cpu_paths.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

# (key of the run in the merged JSON, scene description, bar label)
STAGE_BARS = (
    ("bench_cpu.json", "768x432:1 and 1080p:1, 2026-11-28", "768x432, 1 moving face",
     "CPU · 768×432, 1 face"),
    ("bench_cpu.json", "1080p:1, both modes, 2026-12-07", "1080p, 1 moving face",
     "CPU · 1080p, 1 face"),
    ("bench_cpu.json", "1080p:4 tracked, 2026-11-28", "1080p, 4 moving faces",
     "CPU · 1080p, 4 faces"),
    ("bench_cpu.json", "4k:1, 2026-12-07", "4k, 1 moving face", "CPU · 4K, 1 face"),
    ("bench_h200.json", "1080p:1, --temporal off", "1080p, 1 moving face",
     "H200 · 1080p, 1 face (GPEN-512 fp16)"),
)


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def stage_bars(out: Path) -> Path:
    from gpen_video.bench.report import median_run, plot_stages, stage_ms_per_frame

    entries = []
    for name, key, scene_name, label in STAGE_BARS:
        report = _load(name)["runs"][key]
        scene = next(s for s in report["scenes"] if s["description"] == scene_name)
        serial = scene["workers"][0]["serial"]
        run = median_run(serial["runs"])
        wall = 1000 * run["seconds"] / max(1, run["frames"])
        entries.append((label, stage_ms_per_frame(run), [("wall", wall)]))
    return plot_stages(entries, out, "gpen-video bench, serial breakdown: milliseconds per "
                                     "frame by stage (CPU: GPEN-BFR-256, 2 cores; random "
                                     "weights)")


def faces_per_second(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gpu = [r for r in _load("restorer_throughput_h200.json")["rows"]
           if r.get("status") == "measured" and r.get("cuda_graphs") and r["device"] != "cpu"]
    cpu_run = _load("gpen_cpu_paths.json")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    for ax, model in zip(axes, ("GPEN-BFR-256", "GPEN-BFR-512")):
        for precision, style in (("fp32", "o-"), ("tf32", "s-"), ("fp16", "^-"), ("bf16", "v--")):
            rows = sorted((r for r in gpu if r["model"] == model and r["precision"] == precision),
                          key=lambda r: r["batch"])
            if rows:
                ax.plot([r["batch"] for r in rows], [r["faces_per_s"] for r in rows], style,
                        label=f"H200 torch {precision}")
        _cpu_points(ax, cpu_run["models"][model]["median_ms"], cpu_run["date"][:10])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([1, 8, 32], ["1", "8", "32"])
        ax.set_xlabel("faces per forward pass (batch)")
        ax.set_title(f"{model} (random weights)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("faces per second")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("GPEN network alone: faces/s against batch (H200: CUDA graphs on)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


CPU_PATHS = (("auto", "torch compiled (auto)", "x", "×"), ("onnxruntime", "onnxruntime", "+", "+"),
             ("torch plain", "torch eager", "_", "–"))


def _cpu_points(ax, median_ms: dict, date: str) -> None:  # noqa: ANN001 - a matplotlib Axes
    """This CPU's batch-1 faces/s per path, markers at batch 1 and one label listing them (the
    values sit too close on a log axis for a label each)."""
    lines = [f"2-core CPU, batch 1 ({date}, one run):"]
    for key, label, marker, glyph in CPU_PATHS:
        rate = 1000.0 / median_ms[key]
        ax.plot([1], [rate], marker, color="black", ms=10, mew=1.5)
        lines.append(f"{glyph}  {label}: {rate:.2g}")
    top = max(1000.0 / median_ms[key] for key, *_ in CPU_PATHS)
    ax.annotate("\n".join(lines), (1, top), textcoords="offset points", xytext=(10, 8),
                fontsize=7, va="bottom")


def main() -> None:
    print(stage_bars(REPO / "benchmarks" / "stages_per_frame.png"))
    print(faces_per_second(REPO / "benchmarks" / "faces_per_second.png"))


if __name__ == "__main__":
    main()
