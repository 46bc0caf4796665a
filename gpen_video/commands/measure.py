"""``gpen-video measure SOURCE RESULT``: temporal stability and detail of a result video.

Works on any pair of videos with equal frames (gpen-video's output or another tool's). Prints a
table; ``--json`` prints the numbers as one JSON object instead; ``--plot PNG`` draws per-track
curves. See :mod:`gpen_video.quality`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.options import DETECTORS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the source video")
    parser.add_argument("result", type=Path, help="a processed video with the same frames")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="write per-track curves (warping error, sharpness, jitter)")
    parser.add_argument("--detector", default="resnet50", choices=DETECTORS)
    parser.add_argument("--detector-weights", type=Path, default=None,
                        help="local RetinaFace weights file (offline use)")
    parser.add_argument("--device", default="cpu", help="detector device: cpu | cuda | cuda:N")
    parser.add_argument("--frames", type=int, default=None, metavar="N",
                        help="measure only the first N frames")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-q", "--quiet", action="store_true")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.errors import UsageError
    from gpen_video.options import DetectOptions
    from gpen_video.quality import MeasureOptions, measure, plot

    if args.frames is not None and args.frames < 2:
        raise UsageError(f"--frames {args.frames}: measure needs at least 2 frames")
    cache_dir = None
    if env is not None:
        from gpen_video.models.weights import default_cache_dir

        cache_dir = default_cache_dir(env)
    options = MeasureOptions(
        detect=DetectOptions(network=args.detector, weights=args.detector_weights,
                             device=args.device, cache_dir=cache_dir),
        max_frames=args.frames)
    report = measure(args.source, args.result, options)
    if args.plot is not None:
        plot(report, args.plot)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.text())
    return 0
