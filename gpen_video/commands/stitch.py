"""``gpen-video stitch SEGMENTS… --audio-from IN OUT``: join rendered segments.

Packet-copies the segments in frame order (placed by their timestamps, so any order works),
checks continuity against ``IN`` (no gap, no overlap, every frame once), and muxes ``IN``'s audio,
subtitles and metadata once. ``--reencode`` (or ``--codec``) encodes a delivery codec instead,
from the segments' pixels: use it with the lossless segments of ``gpen-video … --segment``.
See :mod:`gpen_video.farm.stitch`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import PROGRESS_MODES, EncodeOptions

INTERMIXED_ARGS = True  # segments before and the output after --audio-from (gpen_video.cli)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segments", type=Path, nargs="+",
                        help="rendered segments, in any order, or a folder of them")
    parser.add_argument("output", type=Path, help="the joined video (written only when complete)")
    parser.add_argument("--audio-from", type=Path, required=True, metavar="IN",
                        help="the source clip: its timeline, audio, subtitles and metadata")
    parser.add_argument("-y", "--overwrite", action="store_true",
                        help="replace OUTPUT if it exists")
    parser.add_argument("--frames", default=None, metavar="A-B",
                        help="the span the segments must cover (default: the whole clip; an end "
                             "past the clip is clamped)")
    check = parser.add_argument_group("checking the segments")
    check.add_argument("--verify", default="auto", choices=["auto", "none", "packets", "frames"],
                       help="how segments prove they are this clip's and undamaged, from the "
                            "manifest beside each (SEGMENT.json): packets = every packet's "
                            "checksum, frames = also every decoded picture's, none = timestamps "
                            "only; default auto: frames when re-encoding, packets when "
                            "packet-copying (costs: docs/farm-integrity.md)")
    encode = parser.add_argument_group("re-encoding (default: packet copy)")
    encode.add_argument("--reencode", action="store_true",
                        help="encode a delivery codec that follows the source, as "
                             "`gpen-video IN OUT` would")
    encode.add_argument("--codec", default=None,
                        choices=["h264", "hevc", "prores", "dnxhr", "ffv1", "png"],
                        help="encode this delivery codec (implies --reencode)")
    encode.add_argument("--crf", type=int, default=None, metavar="Q",
                        help="h264/hevc quality when re-encoding, lower is better; default: 18")
    encode.add_argument("--preset", default=None,
                        help="h264/hevc encoder preset when re-encoding; default: the "
                             "encoder's own (medium)")
    encode.add_argument("--pix-fmt", default=None, metavar="FMT",
                        help="pixel format when re-encoding; default: as `gpen-video IN OUT` "
                             "would (the source's, where the codec takes it)")
    report = parser.add_argument_group("reporting")
    report.add_argument("--progress", default="none",
                        choices=[m for m in PROGRESS_MODES if m != "bar"],
                        help="plain: 'Progress: N%%' lines (Deadline); json: one JSON object "
                             "per line; openjd: 'openjd_progress: N' lines; none: one closing "
                             "line")
    report.add_argument("-q", "--quiet", action="store_true", help="errors only")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.commands.run import parse_frames
    from gpen_video.farm import stitch
    from gpen_video.progress import Progress

    frames = parse_frames(args.frames) if args.frames else None
    tuned = any(v is not None for v in (args.crf, args.preset, args.pix_fmt))
    if tuned and not (args.reencode or args.codec):
        raise UsageError("--crf, --preset and --pix-fmt apply when re-encoding: add --reencode "
                         "or --codec")
    encode = None
    if args.reencode or args.codec:
        encode = EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset,
                               pix_fmt=args.pix_fmt)
    mode = "none" if args.quiet else args.progress
    progress = Progress(mode, 1)

    def on_frame(done: int, total: int) -> None:
        progress.total = total
        progress.update(done)

    result = stitch(args.segments, args.audio_from, args.output, encode=encode,
                    overwrite=args.overwrite, frames=frames, progress=on_frame,
                    verify=args.verify)
    text = (f"gpen-video stitch: wrote {result.output}: {result.frames} frames (frames "
            f"{result.first}-{result.last}) from {result.segments} segments, "
            f"{'re-encoded' if result.reencoded else 'packet-copied'}, in {result.seconds:.1f}s")
    progress.close({"output": str(result.output), "frames": result.frames,
                    "first": result.first, "last": result.last, "segments": result.segments,
                    "reencoded": result.reencoded, "seconds": round(result.seconds, 3)}, text)
    if mode == "none" and not args.quiet:
        print(text, file=sys.stderr)
    return 0
