"""Media I/O at 1080p: decode fps, encode fps per codec/preset, and peak memory vs clip length.

    python benchmarks/media_io.py                    # everything (≈ 15 min on 2 shared cores)
    python benchmarks/media_io.py --skip-rss         # fps only
    python benchmarks/media_io.py --rss-minutes 1 4 --rss-preset ultrafast
    python benchmarks/media_io.py --scene 1080p:1 --skip-rss --encode medium=48 ultrafast=48
                                                     # on gpen-video bench's synthesised scene

(with the package installed, ``pip install -e .``, or ``PYTHONPATH=.`` from the checkout)

Writes ``benchmarks/results/media_io.json`` and rewrites its own section of
``benchmarks/RESULTS.md`` (between the ``media_io`` markers; other sections are left alone).

What is timed is the product's own path, not bare FFmpeg:

* decode: ``VideoSource`` iteration, i.e. demux + H.264 decode (threaded) + YUV → upright RGB
  numpy per frame, for an 8-bit 1080p H.264 clip;
* encode: ``VideoSink.write`` + ``close``, i.e. RGB → YUV + encode + mux (+ the rename), from
  frames already in memory, per libx264 preset (CRF 18) and ProRes 422 HQ (10-bit);
* ``--scene SIZE:FACES``: decode and encode run on ``gpen-video bench``'s synthesised clip of that
  scene instead (its moving faces over a still background are easier for x264 than the grain
  here); such a run writes ``results/media_io_scene_<scene>.json`` and leaves RESULTS.md alone;
* memory: ``copy_video`` (decode → encode, audio packet-copied) of a synthesised 1-minute and a
  4-minute 1080p24 clip with AAC audio, each in a fresh process; peak RSS is the process's
  high-water mark (``VmHWM``). It must not grow with the clip's length (streaming, nothing held back).

Every fps figure is the median of ``--repeats`` timed runs after a warm-up run. The machine is
shared (the 1-minute load average is recorded next to every figure), so the fps are lower
bounds of what the code does on an idle machine of this kind. Next to each fps is the CPU time
the step used per frame (user + system of the whole process, the codec's own threads included):
what the step costs on any number of cores, so ``1000 / (CPU ms per frame)`` frames per second per
core is the most a CPU-bound run can get from each core it has for that step.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpen_video.bench import records  # noqa: E402
from gpen_video.bench.measure import cpu_model, load_average  # noqa: E402
from gpen_video.media import VideoSink, VideoSource  # noqa: E402
from gpen_video.options import EncodeOptions  # noqa: E402

RESULTS_JSON = REPO / "benchmarks" / "results" / "media_io.json"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- media_io:begin -->", "<!-- media_io:end -->"
WIDTH, HEIGHT, FPS = 1920, 1080, 24


def base_frames(count: int = 8) -> list[np.ndarray]:
    """Camera-like 1080p content: gradients, shapes, a little grain (x264 has real work)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frames = []
    for i in range(count):
        r = 120 + 80 * np.sin(xx / 150 + i / 4)
        g = 110 + 70 * np.cos(yy / 110 - i / 6)
        b = 100 + 60 * np.sin((xx + yy) / 210 + i / 5)
        img = np.stack([r, g, b], -1)
        for k in range(6):
            x0, y0 = int(200 + 260 * k + 9 * i) % (WIDTH - 200), int(150 + 120 * k) % (HEIGHT - 200)
            img[y0:y0 + 180, x0:x0 + 180] = (40 * k) % 255
        img += rng.normal(0, 2.0, img.shape).astype(np.float32)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def synthesise(path: Path, seconds: float, frames: list[np.ndarray], preset: str) -> Path:
    """An H.264 (``preset``, CRF 18) 1080p24 MP4 with stereo AAC, made with PyAV."""
    n = int(seconds * FPS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": preset, "crf": "18"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.codec_context.layout = "stereo"
        samples_per_frame = 48000 // FPS
        written = 0
        for i in range(n):
            img = np.roll(frames[i % len(frames)], 4 * i, axis=1)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(video.encode(frame))
            while written < (i + 1) * samples_per_frame:
                t = np.arange(written, written + 1024) / 48000
                wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                aframe = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp",
                                                    layout="stereo")
                aframe.sample_rate, aframe.pts = 48000, written
                out.mux(audio.encode(aframe))
                written += 1024
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def bench_decode(clip: Path, frames: int, repeats: int) -> dict:
    def run() -> tuple[float, float]:  # (fps, CPU ms per frame)
        start, cpu = time.perf_counter(), time.process_time()
        count = 0
        with VideoSource(clip) as source:
            for _ in source:
                count += 1
                if count >= frames:
                    break
        return count / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / count

    run()  # warm-up (page cache, libraries)
    return {"frames": frames, **_repeat(run, repeats)}


def _repeat(run, repeats: int) -> dict:
    """``repeats`` timed calls of ``run() -> (fps, CPU ms per frame)``, with the load before
    each: the runs and their medians."""
    loads, rates, cpu_ms = [], [], []
    for _ in range(repeats):
        loads.append(load_average(None))
        fps, ms = run()
        rates.append(fps)
        cpu_ms.append(ms)
    return {"fps_runs": rates, "fps_median": statistics.median(rates),
            "cpu_ms_per_frame_runs": cpu_ms,
            "cpu_ms_per_frame_median": statistics.median(cpu_ms), "load_1min": loads}


def bench_encode(clip: Path, name: str, options: EncodeOptions, suffix: str, frames: int,
                 repeats: int, workdir: Path, pool_size: int = 24) -> dict:
    with VideoSource(clip) as source:
        pool = []
        for frame in source:
            pool.append(frame)
            if len(pool) >= pool_size:
                break

        def run(count: int) -> tuple[float, float]:  # (fps, CPU ms per frame)
            out = workdir / f"enc_{name}{suffix}"
            step = pool[0].duration
            start, cpu = time.perf_counter(), time.process_time()
            with VideoSink(out, source, options, overwrite=True, audio=False) as sink:
                for i in range(count):
                    base = pool[i % len(pool)]
                    sink.write(dataclasses.replace(base, index=i, pts=i * step))
            elapsed, used = time.perf_counter() - start, time.process_time() - cpu
            size = out.stat().st_size
            out.unlink()
            run.size = size  # type: ignore[attr-defined]
            return count / elapsed, 1000 * used / count

        run(min(frames, 12))  # warm-up
        timed = _repeat(lambda: run(frames), repeats)
    bits = run.size * 8 / (frames / FPS)  # type: ignore[attr-defined]
    return {"codec": name, "options": dataclasses.asdict(options), "frames": frames, **timed,
            "mbit_per_s_at_24fps": round(bits / 1e6, 1)}


RSS_CHILD = """
import sys, time
from gpen_video.media import copy_video
from gpen_video.options import EncodeOptions
start = time.perf_counter()
result = copy_video(sys.argv[1], sys.argv[2], EncodeOptions(preset=sys.argv[3]), overwrite=True)
elapsed = time.perf_counter() - start
# VmHWM, not ru_maxrss: after fork + exec, ru_maxrss starts from the parent's RSS at fork
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("VmHWM"))
print(result.frames_written, elapsed, peak_kib)
"""


def bench_rss(clip: Path, preset: str, workdir: Path) -> dict:
    out = workdir / f"copy_{clip.stem}.mp4"
    before = load_average(None)
    proc = subprocess.run([sys.executable, "-c", RSS_CHILD, str(clip), str(out), preset],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    frames, elapsed, peak_kib = proc.stdout.split()
    out.unlink(missing_ok=True)
    return {"clip": clip.name, "frames": int(frames), "seconds": round(float(elapsed), 1),
            "fps": round(int(frames) / float(elapsed), 1),
            "peak_rss_mib": round(int(peak_kib) / 1024, 1), "preset": preset,
            "load_1min": [before, load_average(None)]}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        BEGIN,
        "## Media I/O at 1080p (`benchmarks/media_io.py`)",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, "
        f"PyAV {m['pyav']} (FFmpeg libavcodec {m['libavcodec']}), Python {m['python']}. "
        f"Date: {result['date']}. Command: `{result['command']}`.",
        "",
        "The product's own path (VideoSource / VideoSink, RGB numpy frames in and out), 1080p, "
        "median of the timed runs after a warm-up. The machine is shared with other jobs: the "
        "1-minute load average at each run is in the JSON, so read these as lower bounds.",
        "",
        "CPU ms/frame: user + system time of the process per frame, the codec's threads "
        "included (medians); fps per core = 1000 / that, the most each core gives a CPU-bound "
        "run of the step.",
        "",
        "| step | codec / preset | frames | median fps | CPU ms/frame | fps per core "
        "| output Mbit/s (24 fps) | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cpu_cells(row: dict) -> str:
        ms = row.get("cpu_ms_per_frame_median")  # absent in runs before it was measured
        return "– | –" if ms is None else f"{ms:.1f} | {1000 / ms:.1f}"

    d = result["decode"]
    source = ("H.264 8-bit 4:2:0 (x264 veryfast, bench scene " + result["scene"] + ")"
              if result.get("scene") else "H.264 High 8-bit 4:2:0 (x264 medium)")
    lines.append(f"| decode → RGB | {source} | {d['frames']} | "
                 f"{d['fps_median']:.1f} | {cpu_cells(d)} "
                 f"| | {statistics.mean(d['load_1min']):.1f} |")
    for e in result["encode"]:
        lines.append(f"| RGB → encode | {e['codec']} | {e['frames']} | {e['fps_median']:.1f} | "
                     f"{cpu_cells(e)} | {e['mbit_per_s_at_24fps']} "
                     f"| {statistics.mean(e['load_1min']):.1f} |")
    if result.get("rss"):
        medium = next((e["fps_median"] for e in result["encode"]
                       if e["codec"] == "libx264 medium CRF 18"), None)
        longest = max(r["frames"] for r in result["rss"])
        took = ("" if medium is None else
                f"the default medium, at the fps above, would take ≈ {longest / medium / 60:.0f} "
                f"min for the {longest}-frame clip here; ")
        lines += ["", "Peak memory of `copy_video` (decode → encode, AAC packet-copied) in a fresh "
                  "process, libx264 preset " + result["rss"][0]["preset"] + " (" + took +
                  "memory does not depend on the preset beyond x264's lookahead):", "",
                  "| clip | frames | peak RSS (MiB) | wall (s) | fps | load |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in result["rss"]:
            lines.append(f"| {r['clip']} | {r['frames']} | {r['peak_rss_mib']} | {r['seconds']} "
                         f"| {r['fps']} | {statistics.mean(r['load_1min']):.1f} |")
    lines += ["", "Raw data: `benchmarks/results/media_io.json`.", END]
    return "\n".join(lines)


def write_section(text: str) -> None:
    records.write_section(RESULTS_MD, text, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-frames", type=int, default=240)  # the whole 10 s clip
    parser.add_argument("--encode", nargs="*", default=["ultrafast=240", "veryfast=120",
                                                       "medium=48", "prores=96"],
                        help="NAME=FRAMES; NAME is an x264 preset or 'prores'")
    parser.add_argument("--rss-minutes", type=float, nargs="*", default=[1, 4])
    parser.add_argument("--rss-preset", default="ultrafast")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--scene", default=None, metavar="SIZE:FACES",
                        help="time gpen-video bench's synthesised scene (e.g. 1080p:1) instead")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="media_io_"))
    workdir.mkdir(parents=True, exist_ok=True)
    frames = base_frames()
    result: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/media_io.py " + shlex.join(argv or sys.argv[1:]),
        "machine": {
            "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
            "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "pyav": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
            "python": platform.python_version(),
        },
        "size": [WIDTH, HEIGHT], "fps": FPS,
    }
    print(f"workdir {workdir}", flush=True)
    pool_size = 24
    if args.scene:
        from gpen_video.bench.synth import default_face_image, parse_scene, synthesize_clip

        scene = parse_scene(args.scene)
        result["scene"], result["size"] = args.scene, [scene.width, scene.height]
        clip = synthesize_clip(default_face_image(), scene, args.decode_frames,
                               workdir / "scene.mp4")
        pool_size = 48  # the face keeps moving through the encoded frames
    else:
        # decode is timed on a typical delivery stream (High profile, CABAC, B-frames: x264
        # medium); the long clips for the memory runs are made with ultrafast to save time
        clip = synthesise(workdir / "bench_10s.mp4", 10, frames, "medium")
    result["decode"] = bench_decode(clip, args.decode_frames, args.repeats)
    print("decode", result["decode"]["fps_median"], flush=True)
    result["encode"] = []
    for item in args.encode:
        name, count = item.split("=")
        if name == "prores":
            options, suffix, label = EncodeOptions(codec="prores"), ".mov", "prores 422 HQ 10-bit"
        else:
            options, suffix, label = EncodeOptions(codec="h264", preset=name), ".mp4", \
                f"libx264 {name} CRF 18"
        entry = bench_encode(clip, name, options, suffix, int(count), args.repeats, workdir,
                             pool_size)
        entry["codec"] = label
        result["encode"].append(entry)
        print("encode", label, entry["fps_median"], flush=True)
    result["rss"] = []
    if not args.skip_rss:
        for minutes in args.rss_minutes:
            long_clip = synthesise(workdir / f"bench_{minutes:g}min.mp4", minutes * 60, frames,
                                   "ultrafast")
            entry = bench_rss(long_clip, args.rss_preset, workdir)
            entry["minutes"] = minutes
            result["rss"].append(entry)
            long_clip.unlink()
            print("rss", entry, flush=True)
    if args.scene:
        name = args.scene.replace(":", "_")
        records.write_json(RESULTS_JSON.with_name(f"media_io_scene_{name}.json"), result,
                           indent=2)
        print(markdown(result))
        return 0
    records.write_json(RESULTS_JSON, result, indent=2)
    write_section(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
