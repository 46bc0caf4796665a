"""``gpen-video analyse INPUT FACES``: detect, track and smooth every face once, write the faces
file and a contact sheet; renders then read it (``gpen-video IN OUT --faces-from FACES``).

Parses the command line into :class:`~gpen_video.options.RunOptions` (the faces parts) and
hands it to :func:`gpen_video.pipeline.analysis.analyse`. Format: docs/faces-file.md and
:mod:`gpen_video.faces.faces_file`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import (PROGRESS_MODES, DetectOptions, RangeOptions, RunOptions,
                                SmoothOptions)


def configure(parser: argparse.ArgumentParser) -> None:
    from gpen_video.commands.run import configure_faces

    parser.add_argument("input", type=Path, help="source video")
    parser.add_argument("faces", type=Path, metavar="FACES",
                        help="the faces file to write (gzip'd JSON lines, whatever the name; "
                             "written only when complete)")
    parser.add_argument("-y", "--overwrite", action="store_true",
                        help="replace FACES if it exists (default: refuse)")
    faces = parser.add_argument_group("faces (as a render takes them; a render reading the file "
                                      "must not contradict them)")
    configure_faces(faces)
    faces.add_argument("--device", default="auto", help="where the detector runs: auto | cpu | "
                                                        "cuda | cuda:N (default auto)")
    faces.add_argument("--no-download", action="store_true",
                       help="never download the detector's weights (default: download them "
                            "when missing)")
    sheet = parser.add_argument_group("contact sheet")
    sheet.add_argument("--sheet", type=Path, default=None, metavar="PNG",
                       help="where to write it (default: beside FACES, named FACES.sheet.png)")
    sheet.add_argument("--no-sheet", action="store_true", help="write no contact sheet")
    sheet.add_argument("--brief", type=int, default=12, metavar="N",
                       help="tracks on fewer than N frames are grouped as brief (default 12)")
    span = parser.add_argument_group("frame range (0-based frame numbers, inclusive)")
    span.add_argument("--frames", default=None, metavar="A-B",
                      help="analyse only frames A..B (default: the whole clip); renders of "
                           "frames inside it can read the file")
    report = parser.add_argument_group("reporting")
    report.add_argument("--progress", default="bar", choices=PROGRESS_MODES,
                        help="bar (default) | plain | json | openjd | none")
    report.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: info, -vv: debug (default: warnings only)")
    report.add_argument("-q", "--quiet", action="store_true",
                        help="errors only (default: progress and a summary)")


def sheet_path(faces: Path) -> Path:
    """The default contact sheet beside ``faces``: ``NAME.sheet.png``."""
    return faces.with_name(f"{faces.name}.sheet.png")


def options_from_args(args: argparse.Namespace, env: Environment | None = None) -> RunOptions:
    """The run options whose faces parts the analysis uses.

    Raises:
        UsageError: a bad option value.
    """
    from gpen_video.commands.run import parse_frames

    cache_dir = None
    if env is not None:
        from gpen_video.models.weights import default_cache_dir

        cache_dir = default_cache_dir(env)
    for flag, value in (("--detect-every", args.detect_every), ("--min-face", args.min_face),
                        ("--detect-size", args.detect_size), ("--brief", args.brief)):
        if value < 0:
            raise UsageError(f"{flag} {value}: must be 0 or more")
    start, end = parse_frames(args.frames) if args.frames else (None, None)
    progress = "none" if args.quiet else args.progress
    return RunOptions(
        input=args.input, output=args.faces, overwrite=args.overwrite,
        progress="plain" if progress == "openjd" else progress,
        detect=DetectOptions(network=args.detector, weights=args.detector_weights,
                             mode=args.detect_mode, scan_min_iod=args.min_face,
                             device=args.device, cache_dir=cache_dir,
                             download=not args.no_download, max_side=args.detect_size,
                             every=args.detect_every),
        smooth=SmoothOptions(method=args.smooth),
        range=RangeOptions(start=start, end=end))


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.pipeline.analysis import analyse

    options = options_from_args(args, env)
    if args.faces.resolve() == args.input.resolve():
        raise UsageError(f"FACES {args.faces} is the input: choose another file name")
    sheet = None if args.no_sheet else (args.sheet or sheet_path(args.faces))
    analyse(options, args.faces, sheet_path=sheet, brief=args.brief)
    return 0
