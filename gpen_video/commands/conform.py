"""``gpen-video conform TIMELINE OUTDIR``: restore what an edit uses and relink the timeline.

Parses the command line into :class:`gpen_video.options.ConformOptions` and hands it to
:func:`gpen_video.conform.run.conform`; prints the report (``--json``: one JSON object on
stdout). Exit codes as every command: 0 done, 2 bad input (missing media, unreadable or
unsupported timeline, disagreeing media, OUTDIR inside a media folder, an output in the way),
75 transient, 1 other, 130 interrupted (finished ranges stay; the same command resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import ConformOptions, FarmOptions

# seconds a signal leaves a conform to stop its workers (and with --farm its local Ray cluster)
# before the process ends anyway, as for `gpen-video farm` (gpen_video.shutdown)
SHUTDOWN_GRACE = 20.0


def configure(parser: argparse.ArgumentParser) -> None:
    from gpen_video.commands import run as run_command

    parser.add_argument("timeline", type=Path,
                        help="the edit: .otio/.otioz, .edl (with --rate), FCP 7 .xml, .fcpxml "
                             "or .aaf (the last three with their OTIO adapters installed)")
    parser.add_argument("outdir", type=Path,
                        help="folder for the restored media and the restored timeline "
                             "(created; not inside a media file's folder)")
    parser.add_argument("-y", "--overwrite", action="store_true",
                        help="replace files in OUTDIR that this conform did not finish itself "
                             "(default: refuse)")
    edit = parser.add_argument_group("conform")
    edit.add_argument("--handles", type=int, default=12, metavar="N",
                      help="frames rendered before and after what each clip uses, clamped to "
                           "the media (default 12)")
    edit.add_argument("--merge-gap", type=int, default=24, metavar="N",
                      help="ranges of one file at most N frames apart are rendered as one "
                           "(default 24: a new range costs its own warm-up)")
    edit.add_argument("--rate", type=float, default=None, metavar="FPS",
                      help="frame rate of an EDL, which stores none (default: none; needed "
                           "for .edl, ignored otherwise)")
    edit.add_argument("--search-path", type=Path, action="append", default=[], metavar="DIR",
                      help="look for missing media by file name in DIR and below (repeatable; "
                           "default: none)")
    edit.add_argument("--workers", default="1", metavar="N",
                      help="render the ranges' chunks with N processes on this machine "
                           "(default 1; auto: as for a run)")
    edit.add_argument("--farm", action="store_true",
                      help="render each range on Ray instead (the farm extra): its chunks of "
                           "--chunk frames spread over the cluster's workers, retried, "
                           "stitched; faces are not counted, so every range is kept (default: "
                           "this machine)")
    edit.add_argument("--chunk", type=int, default=300, metavar="N",
                      help="--farm: frames per chunk (default 300)")
    edit.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                      help="--farm: join this Ray cluster (default: start a local one)")
    edit.add_argument("--dry-run", action="store_true",
                      help="print the plan (clips, ranges, saving) and render nothing "
                           "(default: render)")
    edit.add_argument("--json", action="store_true",
                      help="print the report as one JSON object on stdout (default: text); "
                           "progress lines then go to stderr")
    run_command.configure_render(parser)
    run_command.configure_reporting(parser)
    # a conform renders ranges it plans itself: the run's own range options keep their defaults
    parser.set_defaults(input=Path("-"), output=Path("-"), frames=None, start=None, end=None,
                        overlap=0, on_damage="conceal", segment=False,
                        # plates and passes are a run's (media of a timeline are movies here)
                        fps=None, colorspace=None, start_number=None, matte=None,
                        matte_layer=None, patch=None)


def options_from_args(args: argparse.Namespace, env: Environment | None = None
                      ) -> ConformOptions:
    """Raises: UsageError for a bad value."""
    from gpen_video.commands.run import options_from_args as run_options
    from gpen_video.farm.local import parse_workers, resolve_workers

    run = run_options(args, env)
    if run.compare != "off":
        raise UsageError("--compare makes review copies, not media to relink: drop it for "
                         "conform")
    for flag, value in (("--handles", args.handles), ("--merge-gap", args.merge_gap)):
        if value < 0:
            raise UsageError(f"{flag} {value}: a number of frames, 0 or more")
    if args.rate is not None and args.rate <= 0:
        raise UsageError(f"--rate {args.rate}: a frame rate, e.g. 25 or 23.976")
    workers = parse_workers(str(args.workers))
    if workers is None:
        workers = resolve_workers(args.device, env)
    farm = None
    if args.farm:
        if workers > 1:
            raise UsageError("--farm renders on Ray's workers: drop --workers")
        if args.chunk < 1:
            raise UsageError(f"--chunk {args.chunk}: at least 1 frame")
        farm = FarmOptions(chunk=args.chunk, ray_address=args.ray_address)
    return ConformOptions(run=run, timeline=args.timeline, outdir=args.outdir,
                          rate=_exact_rate(args.rate), handles=args.handles,
                          merge_gap=args.merge_gap, search_paths=tuple(args.search_path),
                          workers=workers, farm=farm, dry_run=args.dry_run)


def _exact_rate(rate: float | None) -> float | None:
    """23.976 → 24000/1001 (and 29.97, 59.94 likewise), as editing systems mean them."""
    if rate is None:
        return None
    for nominal in (24, 30, 48, 60, 120):
        exact = nominal * 1000 / 1001
        if abs(rate - exact) < 0.005:
            return exact
    return rate


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.conform.run import conform

    options = options_from_args(args, env)
    if args.json and options.run.progress in ("plain", "json", "openjd"):
        stdout = sys.stderr  # the report owns stdout
    else:
        stdout = None
    result = conform(options, stdout=stdout)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    elif not args.quiet:
        print(result.text())
    return 0
