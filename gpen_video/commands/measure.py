"""``gpen-video measure SOURCE RESULT``: temporal stability and detail of a result video.

Works on any pair of videos with equal frames (gpen-video's output or another tool's). Prints a
table; ``--json`` prints the numbers as one JSON object instead; ``--plot PNG`` draws per-track
curves. See :mod:`gpen_video.quality`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gpen_video.commands.run import configure_detector
from gpen_video.environment import Environment
from gpen_video.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the source video")
    parser.add_argument("result", type=Path, help="a processed video with the same frames")
    span = parser.add_argument_group("input and frame range (0-based frame numbers, inclusive)")
    span.add_argument("--frames", default=None, metavar="A-B",
                      help="measure only frames A to B of both videos (A-: from A to the end), "
                           "as a run's --frames; default: every frame")
    faces = parser.add_argument_group("faces (found on the source, as a run finds them)")
    configure_detector(faces)
    faces.add_argument("--device", default="cpu", help="detector device: cpu | cuda | cuda:N")
    out = parser.add_argument_group("output and reporting")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object instead of the table")
    out.add_argument("--plot", type=Path, default=None, metavar="PNG",
                     help="also write per-track curves (warping error, sharpness, jitter); "
                          "default: no plot")
    out.add_argument("-v", "--verbose", action="count", default=0,
                     help="-v: say what was picked and why; -vv: debug")
    out.add_argument("-q", "--quiet", action="store_true", help="errors only")


def measure_range(text: str | None) -> tuple[int, int | None] | None:
    """``--frames A-B`` of ``measure``: (A, B) or (A, None), at least two frames; None: all.

    Raises:
        UsageError: not a range of two or more frames; a bare number (``measure --frames N``
            once meant "the first N": that is ``--frames 0-(N-1)`` now, as for a run).
    """
    from gpen_video.commands.run import parse_frames

    if text is None:
        return None
    if text.strip().isdigit():
        n = int(text)
        raise UsageError(f"--frames {text}: measure takes a range A-B, as a run does (frame "
                         f"numbers from 0, inclusive); for the first {n} frames pass --frames "
                         f"0-{max(n - 1, 1)}")
    start, end = parse_frames(text)
    if end is not None and end - start + 1 < 2:
        raise UsageError(f"--frames {text}: measure needs at least 2 frames")
    return start, end


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.options import DetectOptions
    from gpen_video.preflight import check_inputs_exist, check_torch_stack
    from gpen_video.quality import MeasureOptions, measure, plot

    span = measure_range(args.frames)
    check_inputs_exist(args.source, args.result)
    cache_dir = None
    if env is not None:
        from gpen_video.models.weights import default_cache_dir

        cache_dir = default_cache_dir(env)
    detect = DetectOptions(network=args.detector, weights=args.detector_weights,
                           device=args.device, cache_dir=cache_dir)
    check_detector_weights(detect)
    check_torch_stack()
    options = MeasureOptions(detect=detect, start=0 if span is None else span[0],
                             max_frames=None if span is None or span[1] is None
                             else span[1] - span[0] + 1)
    report = measure(args.source, args.result, options)
    if args.plot is not None:
        plot(report, args.plot)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.text())
    return 0


def check_detector_weights(detect) -> None:
    """The detector's weights file is there (or downloaded now), before any video is decoded.

    Raises:
        WeightsError, DownloadError: as a run's checks (:mod:`gpen_video.preflight`).
    """
    from gpen_video.options import RunOptions
    from gpen_video.preflight import check_weights

    check_weights(RunOptions(input=Path("-"), output=Path("-"), detect=detect),
                  need_restorer=False)
