"""``gpen-video bench [INPUT] [options]``: time the real pipeline; print the table.

Parses the command line into :class:`gpen_video.options.BenchOptions` (the job's options are the
``run`` command's) and hands it to :func:`gpen_video.bench.run_bench`. Nothing else.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from gpen_video.commands.run import configure_detector
from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import (BACKEND_NAMES, BENCH_MODES, COMPILE_MODES, DETECT_MODES,
                                OUTPUT_CODECS, PRECISIONS, TACTIC_MODES, TEMPORAL_MODES,
                                BenchOptions, DetectOptions, EncodeOptions, ModelOptions,
                                RestoreOptions, RunOptions, TemporalOptions)

DEFAULT_LENGTH = 24  # frames per timed run


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Time the real pipeline on a clip, or on clips synthesised from a face photo: "
        "end-to-end fps (per GPU and in total), per-stage time, faces/s, frame latency, peak "
        "memory, and the fraction of the model's compute floor; medians over repeats.")
    parser.add_argument("input", type=Path, nargs="?", default=None,
                        help="a clip to time (default: synthesise --scene clips from --face)")
    clips = parser.add_argument_group("input: what is timed")
    clips.add_argument("--face", type=Path, default=None,
                       help="face photo for synthesised clips (default: an FFHQ-aligned face "
                            "shipped with the package, gpen_video/data/gate/"
                            "liveportrait_d18.jpg)")
    clips.add_argument("--scene", action="append", default=None, metavar="SIZE:FACES",
                       help="synthesised clip: 1080p:1 (default), 1080p:4, 4k:1, 4k:4, or "
                            "WxH:N; repeat for several")
    clips.add_argument("--length", type=int, default=None, metavar="N",
                       help=f"frames per timed run: the first N of INPUT, or the length of each "
                            f"synthesised clip (default {DEFAULT_LENGTH})")
    clips.add_argument("--frames", dest="frames_count", default=None, metavar="N",
                       help="the old spelling of --length N (a count; a run's --frames A-B is a "
                            "range)")

    _job_options(parser)
    _timing_options(parser)


def _job_options(parser: argparse.ArgumentParser) -> None:
    """What is run: restoration, faces, temporal, encoding (as for ``gpen-video run``)."""
    model = parser.add_argument_group("restoration (as for gpen-video run)")
    model.add_argument("--model", default="GPEN-BFR-512",
                       help="GPEN-BFR-256|512|1024|2048 or a .pth path")
    model.add_argument("--random-weights", action="store_true",
                       help="the real architecture with random weights (speed is the same)")
    model.add_argument("--no-download", action="store_true",
                       help="never download weights; fail if they are not cached")
    model.add_argument("--backend", default="auto", choices=BACKEND_NAMES,
                       help="as for a run (auto: TensorRT, torch on CUDA, compiled torch, "
                            "onnxruntime or torch on a CPU; identity: everything but the network)")
    model.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="auto: fp32 on the CPU, fp16 on CUDA (after the quality gate)")
    model.add_argument("--batch", type=int, default=8, metavar="N",
                       help="faces per forward pass, gathered across frames")
    model.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                       help="torch: the Inductor-compiled engine (auto: when --backend auto "
                            "chose torch; its one-time build is not timed)")
    model.add_argument("--tactics", default="auto", choices=TACTIC_MODES,
                       help="torch: timed (each layer's fastest way, timed once and cached), "
                            "plain, or auto (timed when compiled or on CUDA)")

    faces = parser.add_argument_group("faces (as for gpen-video run)")
    configure_detector(faces)
    faces.add_argument("--detect", dest="detect_mode", default="tracked",
                       choices=DETECT_MODES,
                       help="face detection: tracked (default) or full (every frame whole)")

    temporal = parser.add_argument_group("temporal (as for gpen-video run)")
    temporal.add_argument("--temporal", default="residual", choices=TEMPORAL_MODES,
                          help="temporal smoothing of the restorer's residual; off: none")

    encode = parser.add_argument_group("output and encoding")
    encode.add_argument("--codec", default=None, choices=OUTPUT_CODECS,
                        help="output codec (default: follow the source)")
    encode.add_argument("--preset", default=None,
                        help="h264/hevc encoder preset (default: the encoder's own, medium)")
    encode.add_argument("--crf", type=int, default=None, metavar="Q",
                        help="h264/hevc quality, lower is better (default: 18)")


def _timing_options(parser: argparse.ArgumentParser) -> None:
    """Where and how it is timed, and what is reported."""
    machine = parser.add_argument_group("machine")
    machine.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    machine.add_argument("--gpus", default="all",
                         help="all | N: one worker process per GPU (0: CPU). Without a GPU: one "
                              "CPU worker")
    machine.add_argument("--workers", default=None, metavar="N[,M…]",
                         help="time the whole command `gpen-video CLIP OUT --workers N` instead "
                              "(fresh processes, stitch included): total fps per worker count, "
                              "counts interleaved repeat by repeat, e.g. 1,2; default: time the "
                              "pipeline in this process")

    timing = parser.add_argument_group("timing")
    timing.add_argument("--repeats", type=int, default=3, help="timed runs per mode")
    timing.add_argument("--warmup", type=int, default=None, metavar="FRAMES",
                        help="frames of the untimed warm-up run (default min(length, 2×batch); "
                             "0: none)")
    timing.add_argument("--mode", default="both", choices=BENCH_MODES,
                        help="overlap: the product's threads (fps, latency, memory); serial: "
                             "one stage at a time (a breakdown that adds up to the wall time); "
                             "both: each repeat runs both")
    timing.add_argument("--no-overlap", dest="mode", action="store_const", const="serial",
                        help="same as --mode serial")
    timing.add_argument("--quality", action="store_true",
                        help="also measure the last timed output against its clip: warping-error, "
                             "sharpness and landmark-jitter ratios (as gpen-video measure)")
    timing.add_argument("--faces-from", dest="faces_from", default=None, choices=["analyse"],
                        help="analyse: analyse each clip once (untimed, `gpen-video analyse`) "
                             "and time renders that read the faces file instead of detecting "
                             "(default: the timed renders detect)")

    report = parser.add_argument_group("reporting")
    report.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                        help="keep synthesised clips and outputs here (default: a temporary "
                             "folder, removed)")
    report.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the report (the same numbers) as JSON; default: none")
    report.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="also draw per-stage time (needs matplotlib); default: none")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def timed_length(args: argparse.Namespace) -> int:
    """``--length N``, or its old spelling ``--frames N``.

    Raises:
        UsageError: both given, or ``--frames`` given a range.
    """
    old = getattr(args, "frames_count", None)
    if old is None:
        return DEFAULT_LENGTH if args.length is None else args.length
    if args.length is not None:
        raise UsageError("--frames is the old spelling of --length: give one of them")
    if not str(old).strip().isdigit():
        raise UsageError(f"--frames {old}: bench times the first N frames (--length N); a "
                         "range A-B is for gpen-video run")
    return int(old)


def options_from_args(args: argparse.Namespace, env: Environment | None = None) -> BenchOptions:
    model_path = Path(args.model) if args.model.endswith((".pth", ".pt")) else None
    detector_weights = args.detector_weights
    engine_dir = cache_dir = None
    if env is not None:  # the folders, from the CLI's environment (as gpen-video IN OUT does)
        from gpen_video.engine.paths import default_engine_dir
        from gpen_video.models.weights import default_cache_dir

        engine_dir, cache_dir = default_engine_dir(env), default_cache_dir(env)
    run = RunOptions(
        input=Path("-"), output=Path("-"), progress="none",
        model=ModelOptions(name=args.model if model_path is None else model_path.stem,
                           checkpoint_path=model_path, download=not args.no_download,
                           random_weights=args.random_weights, cache_dir=cache_dir),
        restore=RestoreOptions(backend=args.backend, device=args.device,
                               precision=args.precision, batch=args.batch,
                               engine_dir=engine_dir, compile=args.compile,
                               tactics=args.tactics),
        detect=DetectOptions(network=args.detector, weights=detector_weights, device=args.device,
                             download=not args.no_download, cache_dir=cache_dir,
                             mode=args.detect_mode),
        temporal=TemporalOptions(mode=args.temporal),
        encode=EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset),
    )
    return BenchOptions(run=run, clip=args.input, face=args.face,
                        scenes=tuple(args.scene or ("1080p:1",)), frames=timed_length(args),
                        repeats=args.repeats, warmup=args.warmup, mode=args.mode,
                        gpus=args.gpus, workdir=args.workdir, quality=args.quality,
                        faces_from=args.faces_from == "analyse")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.bench import format_report, run_bench
    from gpen_video.bench.core import log_to_stderr

    options = options_from_args(args, env)
    if args.workers is not None:
        return _execute_workers(args, options, env)
    argv = sys.argv[1:]
    if Path(sys.argv[0]).name in ("gpen-video", "__main__.py"):
        command = "gpen-video " + shlex.join(argv if argv[:1] == ["bench"] else ["bench", *argv])
    else:
        command = "gpen-video bench (called from Python)"
    report = run_bench(options, log=None if args.quiet else log_to_stderr,
                       command=command)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot is not None:
        from gpen_video.bench.report import plot_report

        plot_report(report, args.plot)
    print(format_report(report), flush=True)
    return 0


def _execute_workers(args: argparse.Namespace, options, env: Environment | None) -> int:
    """``--workers``: :mod:`gpen_video.bench.workers`."""
    import datetime as dt
    import shutil
    import tempfile

    from gpen_video.bench.core import log_to_stderr
    from gpen_video.bench.measure import load_average, machine_info, versions
    from gpen_video.bench.workers import bench_workers, format_workers, parse_counts

    from gpen_video.bench.core import check_before_work

    counts = parse_counts(args.workers)
    check_before_work(options)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpen_bench_workers_"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load_before = load_average()
    try:
        scenes = bench_workers(options, counts, workdir,
                               (lambda _line: None) if args.quiet else log_to_stderr)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    run = options.run
    report = {"benchmark": "gpen-video bench --workers", "date": started,
              "command": "gpen-video " + shlex.join(sys.argv[1:]), "machine": machine_info(),
              "versions": versions(run.restore.backend),
              "config": {"model": run.model.name, "random_weights": run.model.random_weights,
                         "backend": run.restore.backend, "device": run.restore.device,
                         "detector": run.detect.network, "temporal": run.temporal.mode,
                         "frames": options.frames, "repeats": options.repeats,
                         "workers": counts,
                         "omp_num_threads": (env or Environment.read()).omp_threads},
              "load_avg_1min": {"before": load_before, "after": load_average()},
              "scenes": scenes}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(format_workers(report), flush=True)
    return 0
