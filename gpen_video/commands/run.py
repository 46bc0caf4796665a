"""``gpen-video INPUT OUTPUT [options]``: restore the faces in a video.

Parses the command line into :class:`gpen_video.options.RunOptions` and hands it to
:func:`gpen_video.pipeline.run`. Nothing else.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import (
    BACKEND_NAMES,
    COMPILE_MODES,
    DETECT_MODES,
    DETECTOR_CHOICES,
    FACE_SELECTIONS,
    GEOMETRIES,
    ON_DAMAGE,
    OUTPUT_CODECS,
    PRECISIONS,
    PROGRESS_MODES,
    SMOOTH_METHODS,
    TACTIC_MODES,
    TEMPORAL_MODES,
    BlendOptions,
    DetectOptions,
    EncodeOptions,
    ModelOptions,
    PassOptions,
    PlateOptions,
    RangeOptions,
    RestoreOptions,
    RunOptions,
    SmoothOptions,
    TemporalOptions,
    WorkersOptions,
)


def configure(parser: argparse.ArgumentParser) -> None:
    groups = configure_job(parser)
    groups["machine"].add_argument(
        "--workers", default="1", metavar="N",
        help="render with N processes on this machine over frame-exact chunks, stitched at the "
             "end (one per GPU or sharing one; torch threads per process: OMP_NUM_THREADS, else "
             "cores / N); auto: one per 4 cores, at least 1 and at most 4 per GPU")


# Option groups, by what the user is doing. Every option has a help line; the formatter of
# gpen_video.cli appends the default where the help does not state it (tests/test_cli_help.py).
GROUP_TITLES = {
    "span": "input and frame range (0-based frame numbers, inclusive)",
    "faces": "faces: finding and tracking them",
    "restore": "restoration: the network and how strongly its result is used",
    "temporal": "temporal: steadiness from frame to frame",
    "encode": "output and encoding (default: the source's codec when it is one of h264, hevc, "
              "prores, dnxhr, ffv1 and the image formats; others, e.g. MPEG-4 Part 2, become "
              "h264 — the summary says which)",
    "machine": "machine: devices, caches, processes",
    "report": "reporting",
}


def configure_job(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The options of one job (every command that renders takes them); returns the argument
    groups by key of :data:`GROUP_TITLES`, for a command that adds its own options to one."""
    parser.add_argument("input", type=Path, help="source video")
    parser.add_argument("output", type=Path, help="restored video (written only when complete)")
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    configure_span(groups["span"])
    configure_render(parser, groups)
    encode = groups["encode"]
    encode.add_argument("-y", "--overwrite", action="store_true",
                        help="replace OUTPUT if it exists")
    encode.add_argument("--segment", action="store_true",
                        help="a render-farm chunk: lossless FFV1 .mkv without audio, joined "
                             "later by `gpen-video stitch` (templates in scripts/)")
    configure_plates(parser)
    configure_reporting(parser, groups["report"])
    return groups


def configure_span(span: argparse._ArgumentGroup) -> None:
    """Which frames of the input one job renders."""
    span.add_argument("--frames", default=None, metavar="A-B",
                      help="output only frames A to B (A-: from A to the end; A: frame A "
                           "alone); default: every frame")
    span.add_argument("--start", type=int, default=None, metavar="A",
                      help="first frame to output (the same as --frames A-); default: 0")
    span.add_argument("--end", type=int, default=None, metavar="B",
                      help="last frame to output (the same as --frames 0-B); default: the last")
    span.add_argument("--overlap", default=0, metavar="N|auto",
                      help="frames decoded before the range to warm the tracker; auto: as many "
                           "before and after it as a chunk needs to render what a single run of "
                           "the whole clip renders (farm chunks)")
    span.add_argument("--on-damage", default=None, choices=ON_DAMAGE,
                      help="a damaged input packet: conceal it (repeat the previous frame, warn, "
                           "keep every later frame) or fail (exit 2, nothing written); default "
                           "conceal. Files missing from an image sequence fail (listed in one "
                           "error) unless --on-damage conceal is given")



RENDER_GROUPS = ("faces", "restore", "temporal", "encode", "machine")


def configure_render(parser: argparse.ArgumentParser,
                     groups: dict[str, argparse._ArgumentGroup] | None = None) -> None:
    """How frames are restored and encoded: the faces, restoration, temporal, encoding and
    machine options (``gpen-video conform`` takes them too, for every range it renders), into
    ``groups`` (made here when not given)."""
    if groups is None:
        groups = {key: parser.add_argument_group(GROUP_TITLES[key]) for key in RENDER_GROUPS}
    faces = groups["faces"]
    configure_faces(faces, groups["temporal"])
    faces.add_argument("--faces", default="all", choices=FACE_SELECTIONS,
                       help="all: every face; largest: only the largest face of each frame "
                            "(after --tracks/--skip-tracks)")
    configure_selection(parser)
    _configure_restoration(groups["restore"])
    groups["temporal"].add_argument(
        "--temporal", default="residual", choices=TEMPORAL_MODES,
        help="temporal smoothing of what the restorer changed (its residual), per face: damps "
             "detail that changes from frame to frame, keeps the picture's own detail "
             "untouched; off: each frame as restored")
    _configure_encoding(groups["encode"])
    _configure_machine(groups["machine"])


def configure_detector(faces: Any) -> None:
    """``--detector`` and ``--detector-weights``, worded alike for every command that detects."""
    faces.add_argument("--detector", default="auto", choices=DETECTOR_CHOICES,
                       help="RetinaFace backbone; auto: the one --detector-weights holds, "
                            "resnet50 without that option")
    faces.add_argument("--detector-weights", type=Path, default=None, metavar="PATH",
                       help="local RetinaFace weights file (offline use); default: the weights "
                            "cache, downloaded on first use")


def configure_faces(faces: Any, smooth: Any = None) -> None:
    """The detection and tracking options (a run's and ``gpen-video analyse``'s); ``--smooth``
    goes into ``smooth`` (the temporal group of a run) when given."""
    configure_detector(faces)
    faces.add_argument("--detect", dest="detect_mode", default="tracked",
                       choices=DETECT_MODES,
                       help="tracked (default): each tracked face is re-detected in a window "
                            "around its predicted position, the whole frame is scanned only "
                            "every --detect-every frames, at shot cuts and when a face is lost; "
                            "full: every frame is detected whole (the earlier behaviour)")
    faces.add_argument("--min-face", type=float, default=24.0, metavar="PX",
                       help="tracked: the full-frame scan finds faces down to this many pixels "
                            "between the eyes (default 24; it sets the scan's resolution, tiled "
                            "at high resolutions)")
    faces.add_argument("--detect-size", type=int, default=640, metavar="PX",
                       help="full: detect on frames downscaled to this longer side (default "
                            "640; 0: full size; in the 1328 px Solvay photo the MobileNet "
                            "detector finds 17 of 29 faces at 640, all 29 at 960 or full size). "
                            "tracked: the size of one scan tile")
    faces.add_argument("--detect-every", type=int, default=0, metavar="N",
                       help="tracked: scan the whole frame every N frames (default 0: about "
                            "0.5 s of video); full: detect on every Nth frame only, the tracker "
                            "predicts in between (default 0: every frame)")
    (smooth if smooth is not None else faces).add_argument(
        "--smooth", default="rts", choices=SMOOTH_METHODS,
        help="smoothing of each face's alignment over time (rts: a Kalman smoother with a "
             "look-ahead of 0.5 s; none: per frame)")


def configure_selection(parser: argparse.ArgumentParser) -> None:
    """Faces from an analysis, and which tracks to restore (``gpen-video analyse``,
    :mod:`gpen_video.faces.selection`)."""
    group = parser.add_argument_group(
        "faces file and track selection (docs/faces-file.md; ids as on the contact sheet)")
    group.add_argument("--faces-from", type=Path, default=None, metavar="FACES",
                       help="render with the faces of `gpen-video analyse IN FACES` instead of "
                            "detecting (no detector loaded; bit-identical to a detecting run "
                            "with the analysis's options; default: detect)")
    group.add_argument("--tracks", default=None, metavar="ID,ID",
                       help="restore only these tracks (default: every track)")
    group.add_argument("--skip-tracks", default=None, metavar="ID,ID",
                       help="never restore these tracks: their pixels stay the source's "
                            "(default: none)")


def _configure_restoration(restore: Any) -> None:
    restore.add_argument("--model", default="GPEN-BFR-512",
                         help="GPEN-BFR-256|512|1024|2048 (downloaded on first use) or a .pth "
                              "path")
    restore.add_argument("--random-weights", action="store_true",
                         help="the real architecture with random weights: for plumbing and "
                              "speed tests only, the output is not a restoration")
    restore.add_argument("--no-download", action="store_true",
                         help="never download weights; fail if they are not cached")
    restore.add_argument("--backend", default="auto", choices=BACKEND_NAMES,
                         help="auto: TensorRT when installed with a GPU, else torch on CUDA; on "
                              "a CPU torch compiled with Inductor when a C++ compiler is there, "
                              "else onnxruntime when installed, else torch. identity: paste the "
                              "aligned faces back unrestored (geometry checks, timing "
                              "everything but the network)")
    restore.add_argument("--precision", default="auto", choices=PRECISIONS,
                         help="auto: fp32 on the CPU, fp16 on CUDA; fp16/bf16 are used only "
                              "after passing the quality gate, else fp16 → bf16 → fp32")
    restore.add_argument("--batch", type=int, default=8, metavar="N",
                         help="faces per forward pass, gathered across frames (on the CPU the "
                              "backends run one face per pass: faster per face there)")
    restore.add_argument("--strength", action="append", default=None, metavar="S|ID=S",
                         help="how much of the restoration is pasted: 0 = original, 1 = restored "
                              "(default 1); ID=S sets one track's strength (repeat: --strength "
                              "0.8 --strength 4=0.5)")
    restore.add_argument("--color-match", action="store_true",
                         help="match restored colours to the source face")


def _configure_encoding(encode: Any) -> None:
    encode.add_argument("--codec", default=None,
                        choices=OUTPUT_CODECS,
                        help="output codec; default: follow the source (see the group's title); "
                             "vp9/av1 in .webm or .mkv")
    encode.add_argument("--crf", type=int, default=None, metavar="Q",
                        help="h264/hevc quality, lower is better; default: 18")
    encode.add_argument("--preset", default=None,
                        help="h264/hevc encoder preset (ultrafast … veryslow); default: the "
                             "encoder's own (medium)")
    encode.add_argument("--pix-fmt", default=None, metavar="FMT",
                        help="output pixel format, e.g. yuv420p10le; default: the source's, "
                             "where the codec takes it")
    encode.add_argument("--compare", default="off", choices=["off", "side-by-side", "split"],
                        help="review mode: write the source beside the result (side-by-side: "
                             "twice as wide) or split at the middle (left source, right result), "
                             "same timing and audio; not for delivery")


def _configure_machine(machine: Any) -> None:
    machine.add_argument("--device", default="auto",
                         help="auto | cpu | cuda | cuda:N (auto: the first GPU, else the CPU)")
    machine.add_argument("--geometry", default="auto", choices=GEOMETRIES,
                         help="where crops and paste-back run: torch = on the restorer's device "
                              "(frames uploaded once, only finished frames back); auto: torch "
                              "when the restorer is on CUDA, else cpu (OpenCV)")
    machine.add_argument("--max-batch", type=int, default=None, metavar="N",
                         help="largest batch an engine accepts (TensorRT profile max; default "
                              "max(32, --batch)); onnxruntime splits larger batches")
    machine.add_argument("--no-cuda-graphs", action="store_true",
                         help="torch on CUDA: run the network eagerly instead of replaying CUDA "
                              "graphs (captured at load for batch sizes 1, 2, 4, … up to "
                              "--batch)")
    machine.add_argument("--engine-dir", type=Path, default=None, metavar="DIR",
                         help="cache of exported ONNX files and TensorRT engines (default: "
                              "engines/ in a checkout, else the user cache)")
    machine.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                         help="torch: run GPEN as an Inductor-compiled engine, built once (a "
                              "minute or more) and cached in the engine folder; auto: compiled "
                              "when --backend auto chose torch, eager with --backend torch")
    machine.add_argument("--tactics", default="auto", choices=TACTIC_MODES,
                         help="torch: timed = each layer computed the way that is fastest on "
                              "this device (timed once, cached); plain = the reference "
                              "arithmetic; auto: timed when compiled or on CUDA")


def configure_reporting(parser: argparse.ArgumentParser,
                        report: argparse._ArgumentGroup | None = None) -> None:
    """Progress and verbosity."""
    if report is None:
        report = parser.add_argument_group(GROUP_TITLES["report"])
    report.add_argument("--progress", default="bar",
                        choices=PROGRESS_MODES,
                        help="bar: a progress bar; plain: 'Progress: N%%' lines (Deadline); "
                             "json: one JSON object per line; openjd: 'openjd_progress: N' lines "
                             "(Open Job Description); none: nothing")
    report.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: also say which backend and geometry were picked and why; "
                             "-vv: debug")
    report.add_argument("-q", "--quiet", action="store_true",
                        help="errors only: no progress, summary or warnings")


def parse_frames(text: str) -> tuple[int, int | None]:
    """``"A-B"`` → (A, B); ``"A-"`` → (A, None); ``"A"`` → (A, A).

    Raises:
        UsageError: not of that form, or B < A.
    """
    head, sep, tail = text.partition("-")
    try:
        start = int(head)
        end = (int(tail) if tail else None) if sep else start
    except ValueError:
        raise UsageError(f"--frames {text!r}: expected A-B with frame numbers, e.g. 1001-1100")
    if start < 0 or (end is not None and end < start):
        raise UsageError(f"--frames {text!r}: need 0 <= A <= B")
    return start, end


def options_from_args(args: argparse.Namespace, env: Environment | None = None) -> RunOptions:
    """Build the run's options from parsed arguments.

    With ``env`` the weights and engine folders the flags leave open are resolved here, from
    it; without, they stay None and each process resolves them from its own environment (the
    farm's workers, which may run on other machines)."""
    engine_dir, cache_dir = _folders(args, env)
    model_path = Path(args.model) if args.model.endswith((".pth", ".pt")) else None
    start, end = args.start, args.end
    if args.frames is not None:
        if start is not None or end is not None:
            raise UsageError("use either --frames or --start/--end, not both")
        start, end = parse_frames(args.frames)
    from gpen_video.faces.selection import parse_ids, parse_strengths

    strength, track_strength = parse_strengths(args.strength)
    for flag, value in (("--batch", args.batch),
                        ("--max-batch", 1 if args.max_batch is None else args.max_batch)):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1")
    if args.detect_every < 0:
        raise UsageError(f"--detect-every {args.detect_every}: a number of frames, or 0 for the "
                         "default")
    if args.min_face < 0:
        raise UsageError(f"--min-face {args.min_face}: a size in pixels between the eyes")
    if args.detect_size < 0:
        raise UsageError(f"--detect-size {args.detect_size}: a size in pixels, or 0 for full "
                         "size")
    return RunOptions(
        input=args.input,
        output=args.output,
        overwrite=args.overwrite,
        faces=args.faces,
        faces_from=args.faces_from,
        tracks=parse_ids("--tracks", args.tracks),
        skip_tracks=parse_ids("--skip-tracks", args.skip_tracks) or (),
        on_damage=args.on_damage or "conceal",
        progress="none" if args.quiet else args.progress,
        compare=args.compare,
        model=ModelOptions(
            name=args.model if model_path is None else model_path.stem,
            checkpoint_path=model_path,
            cache_dir=cache_dir,
            download=not args.no_download,
            random_weights=args.random_weights,
        ),
        restore=RestoreOptions(backend=args.backend, device=args.device,
                               precision=args.precision, batch=args.batch,
                               max_batch=args.max_batch, engine_dir=engine_dir,
                               cuda_graphs=not args.no_cuda_graphs,
                               compile=args.compile, tactics=args.tactics),
        detect=DetectOptions(network=args.detector, weights=args.detector_weights,
                             mode=args.detect_mode, scan_min_iod=args.min_face,
                             device=args.device, cache_dir=cache_dir,
                             download=not args.no_download,
                             max_side=args.detect_size, every=args.detect_every),
        smooth=SmoothOptions(method=args.smooth),
        blend=BlendOptions(strength=strength, track_strength=track_strength,
                           color_match=args.color_match, geometry=args.geometry),
        temporal=TemporalOptions(mode=args.temporal),
        encode=EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset,
                             pix_fmt=args.pix_fmt, start_number=args.start_number),
        range=RangeOptions(start=start, end=end, overlap=_overlap(args.overlap)),
        plate=plate_options_from_args(args),
        passes=PassOptions(matte=args.matte, patch=args.patch, matte_layer=args.matte_layer),
    )


def configure_plates(parser: argparse.ArgumentParser) -> None:
    """Image sequences, stills, EXR plates and comp passes (docs/plates.md)."""
    plates = parser.add_argument_group(
        "plates and passes (INPUT may be shot.%04d.exr, shot.####.exr, shot.@.png, a folder "
        "of frames or one image; --frames then takes the files' own numbers, e.g. 1001-1100)")
    plates.add_argument("--fps", default=None, metavar="RATE",
                        help="image sequences: frame rate, e.g. 24 or 24000/1001 (default: the "
                             "files' headers, e.g. EXR framesPerSecond, else 24)")
    plates.add_argument("--colorspace", default=None, metavar="NAME",
                        help="EXR plates: their OpenColorIO colour space, e.g. ACEScg (default: "
                             "from the EXR's chromaticities, else the config's scene_linear "
                             "role; config: $OCIO, else the built-in ocio://default)")
    plates.add_argument("--start-number", type=int, default=None, metavar="N",
                        help="image-sequence output: number of the first file (default: the "
                             "input's own frame numbers; a movie's first output frame index)")
    plates.add_argument("--matte", type=Path, default=None, metavar="PATH",
                        help="also write the paste alpha of every output frame: matte.####.exr "
                             "(float), matte.####.png/.tif (16-bit grey) or matte.mkv (FFV1); "
                             "default: none")
    plates.add_argument("--matte-layer", default=None, metavar="NAME",
                        help="EXR output: also put the matte into each output file as the "
                             "float channel NAME.Y (e.g. gpen → gpen.Y); default: none")
    plates.add_argument("--patch", type=Path, default=None, metavar="PATH",
                        help="also write the restored faces only, premultiplied RGBA: "
                             "patch.####.exr, patch.####.png/.tif (16-bit) or patch.mov "
                             "(ProRes 4444); default: none")


def plate_options_from_args(args: argparse.Namespace) -> PlateOptions:
    """``--fps``, ``--colorspace`` and the missing-frames policy.

    Raises:
        UsageError: a frame rate that is not a positive number or fraction.
    """
    fps = None
    if args.fps is not None:
        try:
            fps = Fraction(args.fps)
        except (ValueError, ZeroDivisionError):
            fps = None
        if fps is None or fps <= 0:
            raise UsageError(f"--fps {args.fps!r}: give a positive rate, e.g. 24, 25 or "
                             "24000/1001")
    return PlateOptions(fps=fps, colorspace=args.colorspace,
                        missing="conceal" if args.on_damage == "conceal" else "fail")


def _folders(args: argparse.Namespace, env: Environment | None) -> tuple[Path | None,
                                                                          Path | None]:
    """(engine folder, weights cache folder): ``--engine-dir`` or the environment's default;
    the weights cache from the environment. None without ``env``."""
    if env is None:
        return args.engine_dir, None
    from gpen_video.engine.paths import default_engine_dir
    from gpen_video.models.weights import default_cache_dir

    engine_dir = args.engine_dir if args.engine_dir is not None else default_engine_dir(env)
    return engine_dir, default_cache_dir(env)


def _overlap(value: object) -> int:
    """``--overlap``: frames (``auto`` is resolved later, by :func:`execute`; 0 here)."""
    if str(value).strip().lower() == "auto":
        return 0
    try:
        return int(value)  # type: ignore[call-overload]
    except ValueError:
        raise UsageError(f"--overlap {value!r}: a number of frames, or auto") from None


# (flag, argparse dest, where the faces file's header keeps it): what a faces file decides
ANALYSIS_FLAGS = (("--detect", "detect_mode", ("detect", "mode")),
                  ("--detect-every", "detect_every", ("detect", "every")),
                  ("--min-face", "min_face", ("detect", "scan_min_iod")),
                  ("--detect-size", "detect_size", ("detect", "max_side")),
                  ("--detector", "detector", ("detect", "network")),
                  ("--smooth", "smooth", ("smooth", "method")))


def check_faces_from(args: argparse.Namespace) -> None:
    """``--faces-from`` with an analysis option given explicitly (not its default) that differs
    from the analysis's: the analysis wins, so the option would be ignored — refused instead.

    Raises:
        UsageError: naming the option, its value and the analysis's; FacesFileError: the file's
            header cannot be read.
    """
    from gpen_video.faces.faces_file import read_header

    if getattr(args, "faces_from", None) is None:
        return
    header = read_header(args.faces_from)
    defaults = argparse.ArgumentParser()
    configure_job(defaults)
    for flag, dest, (part, key) in ANALYSIS_FLAGS:
        value, default = getattr(args, dest, None), defaults.get_default(dest)
        recorded = header["options"].get(part, {}).get(key)
        if value != default and value != recorded:
            raise UsageError(
                f"{flag} {value} contradicts {args.faces_from} (analysed with {flag} "
                f"{recorded}): with --faces-from the analysis decides where the faces are and "
                f"nothing is detected, so the analysis wins; drop {flag}, or analyse again "
                f"with it (`gpen-video analyse {args.input} FACES {flag} {value}`)")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    check_faces_from(args)
    options = options_from_args(args, env)
    if str(args.overlap).strip().lower() == "auto":
        from gpen_video.farm.warmup import auto_range
        from gpen_video.media.endpoints import refuse_chunked

        refuse_chunked(options, "--overlap auto (a farm chunk's warm-up)")

        options = replace(options, range=auto_range(options))
    from gpen_video import pipeline

    workers = _workers(args, env)
    if workers is not None:  # several processes: gpen_video.farm.local
        from gpen_video.farm.local import run_workers
        from gpen_video.media.endpoints import refuse_chunked

        refuse_chunked(options, "--workers")
        _check_before_workers(options)
        run_workers(options, workers, env=env)
        return 0

    stdout = None
    if getattr(args, "segment", False):
        from gpen_video.farm import segment_options

        options = segment_options(options)
    if options.progress == "openjd":  # the pipeline's plain lines, rewritten (gpen_video.farm)
        from gpen_video.progress import OpenJDStream

        options = replace(options, progress="plain")
        stdout = OpenJDStream(sys.stdout)
    pipeline.run(options, stdout=stdout)
    if stdout is not None:
        stdout.flush()
    return 0


def _check_before_workers(options: RunOptions) -> None:
    """The single run's cheap checks (paths, every missing weights file) once, here, before
    any worker starts: the same errors, with the same words, as without ``--workers``."""
    from gpen_video.media import VideoSource
    from gpen_video.preflight import check_before_loading

    from gpen_video.pipeline import _check_options, open_analysis

    chunked = replace(options, range=replace(options.range, overlap=max(1, options.range.overlap)))
    _check_options(chunked)  # every chunk but the first starts inside the clip
    with VideoSource(options.input, options.range) as source:
        check_before_loading(options, source, need_detector=options.faces_from is None)
        if options.faces_from is not None:
            open_analysis(options, source)


def _workers(args: argparse.Namespace, env: Environment | None = None) -> WorkersOptions | None:
    """``--workers``: None for the single in-process run (``1``), else the workers' options.

    Raises:
        UsageError: a bad count, or combined with ``--segment``.
    """
    from gpen_video.farm.local import parse_workers, resolve_workers

    count = parse_workers(str(getattr(args, "workers", "1")))
    if count is None:  # auto
        count = resolve_workers(args.device, env)
    if count == 1:
        return None
    if getattr(args, "segment", False):
        raise UsageError("--segment renders one chunk in this process: drop --workers")
    return WorkersOptions(count=count)
