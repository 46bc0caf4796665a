"""How fast a ``gpen-video`` process ends when told to, and how fast a mistake is reported.

    PYTHONPATH=. python benchmarks/exit_latency.py --repeats 3

* **signals**: a real run (random-weight GPEN 128 px, MobileNet detector, CPU, a 1080p-ish
  test clip) gets SIGTERM or SIGINT at a readiness point — ``mid-run`` (the first progress line
  ≥ 3 %: frames are being written) or ``setup`` (the ``-v`` line "… checked; loading the
  models") — and the seconds from the signal to the process's end are measured, with the exit
  code and whether anything was left in the output folder;
* **cheap checks**: ``main()`` on an output that exists without ``-y``, timed inside a fresh
  interpreter (import of the product excluded), and the whole process's wall time.

Writes ``benchmarks/results/exit_latency.json`` and the ``exit_latency`` section of
``benchmarks/RESULTS.md``. The 1-minute load average is recorded beside every row: the machine
is shared, so the figures are upper bounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TESTDATA = REPO.parent / "shared" / "testdata"
CLIP = TESTDATA / "videos" / "liveportrait_d11.mp4"
WEIGHTS = TESTDATA / "weights" / "detection_mobilenet0.25_Final.pth"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _run_args(model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "gpen_video", str(CLIP), str(out), "--model", str(model),
            "--detector-weights", str(WEIGHTS), "--device", "cpu", "--backend", "torch",
            "--progress", "plain", "-v"]


def one_signal(model: Path, work: Path, signum: int, when: str) -> dict:
    out_dir = Path(tempfile.mkdtemp(dir=work))
    proc = subprocess.Popen(_run_args(model, out_dir / "out.mp4"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    stream = proc.stdout if when == "mid-run" else proc.stderr
    for line in stream:
        if (when == "mid-run" and line.startswith("Progress: ")
                and int(line.split()[1].rstrip("%")) >= 3) or \
                (when == "setup" and "loading the models" in line):
            break
    load = os.getloadavg()[0]
    sent = time.perf_counter()
    proc.send_signal(signum)
    proc.wait(timeout=120)
    seconds = time.perf_counter() - sent
    proc.stdout.read()
    left = sorted(p.name for p in out_dir.iterdir())
    return {"signal": signal.Signals(signum).name, "when": when, "seconds": round(seconds, 3),
            "exit_code": proc.returncode, "left": left, "load": round(load, 2)}


_PROBE = """
import json, sys, time
t = time.perf_counter()
from gpen_video.cli import main
imported = time.perf_counter()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "import": imported - t, "main": time.perf_counter() - imported,
                  "torch": "torch" in sys.modules}))
"""


def one_check(work: Path) -> dict:
    from tests.pipeline_helpers import write_clip
    import numpy as np

    clip = write_clip(work / "in.mov", [np.full((64, 96, 3), 90, np.uint8)] * 2)
    exists = work / "exists.mp4"
    exists.write_bytes(b"old")
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(clip), str(exists)], env=ENV,
                          capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"case": "output exists without -y", "exit_code": probe["code"],
            "main_seconds": round(probe["main"], 3), "import_seconds": round(probe["import"], 3),
            "process_seconds": round(wall, 3), "torch_imported": probe["torch"],
            "load": round(load, 2)}


def write_results(rows: list[dict], checks: list[dict], command: str) -> None:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    data = {"date": now, "command": command, "cpus": os.cpu_count(), "signals": rows,
            "checks": checks}
    (REPO / "benchmarks" / "results" / "exit_latency.json").write_text(
        json.dumps(data, indent=1) + "\n")
    lines = ["<!-- exit_latency:begin -->",
             "## Exit latency and early errors (`benchmarks/exit_latency.py`)", "",
             f"Machine: {os.cpu_count()} logical CPUs, shared. Date: {now}. Command: "
             f"`{command}`.", "",
             "Signal sent at a readiness point of a real CPU run (random-weight GPEN 128 px, "
             "MobileNet detector); seconds from the signal to the end of the process. Load: "
             "1-minute load average when the signal was sent (2 cores).", "",
             "| signal | when | runs | median s | max s | exit codes | left in the output "
             "folder | load |", "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["signal"], r["when"]), []).append(r)
    for (sig, when), rs in groups.items():
        secs = [r["seconds"] for r in rs]
        lines.append(f"| {sig} | {when} | {len(rs)} | {statistics.median(secs):.2f} | "
                     f"{max(secs):.2f} | {sorted({r['exit_code'] for r in rs})} | "
                     f"{'nothing' if not any(r['left'] for r in rs) else 'FILES'} | "
                     f"{min(r['load'] for r in rs):.1f}–{max(r['load'] for r in rs):.1f} |")
    lines += ["", "Output exists without `-y` (a fresh interpreter; `main()` timed after the "
              "product's import):", "",
              "| runs | exit codes | main() median s | whole process median s | torch imported "
              "| load |", "| ---: | --- | ---: | ---: | --- | --- |"]
    lines.append(f"| {len(checks)} | {sorted({c['exit_code'] for c in checks})} | "
                 f"{statistics.median(c['main_seconds'] for c in checks):.3f} | "
                 f"{statistics.median(c['process_seconds'] for c in checks):.2f} | "
                 f"{any(c['torch_imported'] for c in checks)} | "
                 f"{min(c['load'] for c in checks):.1f}–{max(c['load'] for c in checks):.1f} |")
    lines += ["", "Raw data: `benchmarks/results/exit_latency.json`.", "<!-- exit_latency:end -->"]
    results = REPO / "benchmarks" / "RESULTS.md"
    text = results.read_text()
    section = "\n".join(lines)
    if "<!-- exit_latency:begin -->" in text:
        head, rest = text.split("<!-- exit_latency:begin -->", 1)
        text = head + section + rest.split("<!-- exit_latency:end -->", 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from tests.pipeline_helpers import save_small_gpen

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = save_small_gpen(work / "gpen128.pth")
        rows = []
        for _ in range(args.repeats):
            for signum, when in ((signal.SIGTERM, "mid-run"), (signal.SIGTERM, "setup"),
                                 (signal.SIGINT, "mid-run")):
                rows.append(one_signal(model, work, signum, when))
                print(rows[-1], flush=True)
        checks = [one_check(Path(tempfile.mkdtemp(dir=work))) for _ in range(args.repeats)]
        for c in checks:
            print(c, flush=True)
    write_results(rows, checks, f"PYTHONPATH=. python benchmarks/exit_latency.py --repeats "
                                f"{args.repeats}")


if __name__ == "__main__":
    main()
