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

from gpen_video.options import (BenchOptions, DetectOptions, EncodeOptions, ModelOptions,
                                RestoreOptions, RunOptions, TemporalOptions)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Time the real pipeline on a clip, or on clips synthesised from a face photo: "
        "end-to-end fps (per GPU and in total), per-stage time, faces/s, frame latency, peak "
        "memory, and the fraction of the model's compute floor; medians over repeats.")
    parser.add_argument("input", type=Path, nargs="?", default=None,
                        help="a clip to time (default: synthesise --scene clips from --face)")
    parser.add_argument("--face", type=Path, default=None,
                        help="face photo for synthesised clips (default in a checkout: "
                             "../shared/testdata/images/gpen_ffhq-10_00004.png)")
    parser.add_argument("--scene", action="append", default=None, metavar="SIZE:FACES",
                        help="synthesised clip: 1080p:1 (default), 1080p:4, 4k:1, 4k:4, or "
                             "WxH:N; repeat for several")

    model = parser.add_argument_group("model and restorer (as for gpen-video run)")
    model.add_argument("--model", default="GPEN-BFR-512",
                       help="GPEN-BFR-256|512|1024|2048 or a .pth path")
    model.add_argument("--random-weights", action="store_true",
                       help="the real architecture with random weights (speed is the same)")
    model.add_argument("--no-download", action="store_true")
    model.add_argument("--backend", default="auto",
                       choices=["auto", "torch", "onnxruntime", "tensorrt", "identity"])
    model.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    model.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    model.add_argument("--batch", type=int, default=8, help="faces per forward pass")
    model.add_argument("--detector", default="resnet50", choices=["resnet50", "mobile0.25"])
    model.add_argument("--detector-weights", type=Path, default=None,
                       help="local RetinaFace weights (default in a checkout: the shared test "
                            "data's, when it has them for --detector)")
    model.add_argument("--detect", dest="detect_mode", default="tracked",
                       choices=["tracked", "full"],
                       help="face detection: tracked (default) or full (every frame whole)")
    model.add_argument("--temporal", default="flow", choices=["flow", "off"])
    model.add_argument("--codec", default=None, help="output codec (default: follow the source)")
    model.add_argument("--preset", default=None)
    model.add_argument("--crf", type=int, default=None)

    timing = parser.add_argument_group("timing")
    timing.add_argument("--gpus", default="all",
                        help="all | N: one worker process per GPU (0: CPU). Without a GPU: one "
                             "CPU worker")
    timing.add_argument("--frames", type=int, default=24, help="frames per timed run")
    timing.add_argument("--repeats", type=int, default=3, help="timed runs per mode")
    timing.add_argument("--warmup", type=int, default=None, metavar="FRAMES",
                        help="frames of the untimed warm-up run (default min(frames, 2×batch); "
                             "0: none)")
    timing.add_argument("--mode", default="both", choices=["both", "overlap", "serial"],
                        help="overlap: the product's threads (fps, latency, memory); serial: "
                             "one stage at a time (a breakdown that adds up to the wall time)")
    timing.add_argument("--no-overlap", dest="mode", action="store_const", const="serial",
                        help="same as --mode serial")
    timing.add_argument("--workdir", type=Path, default=None,
                        help="keep synthesised clips and outputs here (default: a temporary "
                             "folder, removed)")
    timing.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the report (the same numbers) as JSON")
    timing.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="also draw per-stage time (needs matplotlib)")
    timing.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _checkout_detector_weights(network: str) -> Path | None:
    from gpen_video.faces.detect import weights_name
    from gpen_video.models.weights import get_spec

    testdata = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "weights"
    path = testdata / get_spec(weights_name(network)).filename
    return path if path.is_file() else None


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    model_path = Path(args.model) if args.model.endswith((".pth", ".pt")) else None
    detector_weights = args.detector_weights
    if detector_weights is None:
        detector_weights = _checkout_detector_weights(args.detector)
    run = RunOptions(
        input=Path("-"), output=Path("-"), progress="none",
        model=ModelOptions(name=args.model if model_path is None else model_path.stem,
                           checkpoint_path=model_path, download=not args.no_download,
                           random_weights=args.random_weights),
        restore=RestoreOptions(backend=args.backend, device=args.device,
                               precision=args.precision, batch=args.batch),
        detect=DetectOptions(network=args.detector, weights=detector_weights, device=args.device,
                             download=not args.no_download, mode=args.detect_mode),
        temporal=TemporalOptions(mode=args.temporal),
        encode=EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset),
    )
    return BenchOptions(run=run, clip=args.input, face=args.face,
                        scenes=tuple(args.scene or ("1080p:1",)), frames=args.frames,
                        repeats=args.repeats, warmup=args.warmup, mode=args.mode,
                        gpus=args.gpus, workdir=args.workdir)


def execute(args: argparse.Namespace) -> int:
    from gpen_video.bench import format_report, run_bench
    from gpen_video.bench.core import log_to_stderr

    options = options_from_args(args)
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
