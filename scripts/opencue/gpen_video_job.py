#!/usr/bin/env python3
"""Submit a gpen-video job to OpenCue with PyOutline: a chunked restore layer, then a stitch.

    python gpen_video_job.py IN.mov OUT.mov --segment-dir /shared/job/segments \\
        --frames 0-1199 --chunk 100 [--overlap auto] [--model GPEN-BFR-512] [-- EXTRA ARGS]

The restore layer runs, once per chunk, ``gpen-video IN SEGDIR/seg-#FRAME_START#-#FRAME_END#.mkv
--frames #FRAME_START#-#FRAME_END# --overlap auto --segment`` (RQD replaces the tokens). The last
chunk's ``#FRAME_END#`` may lie past the clip: gpen-video clamps it. The stitch layer depends on
the whole restore layer and runs ``gpen-video stitch SEGDIR --audio-from IN OUT --reencode``.
Input, output and segment folder must be on storage every render node sees.

``--frames`` defaults to the whole clip (counted with gpen-video on this machine). Frame numbers
are gpen-video's: 0-based, in display order. ``--dry-run`` prints the two command lines instead of
submitting (no PyOutline needed).
"""

from __future__ import annotations

import argparse
import getpass
import shlex
import sys

GPEN_VIDEO = "gpen-video"  # the executable on the render nodes


def restore_command(input: str, segment_dir: str, overlap: str, model: str, backend: str,
                    detector: str, extra: list[str]) -> list[str]:
    """The restore layer's command, with OpenCue's chunk tokens."""
    return [GPEN_VIDEO, input, f"{segment_dir}/seg-#FRAME_START#-#FRAME_END#.mkv",
            "--frames", "#FRAME_START#-#FRAME_END#", "--overlap", overlap, "--segment",
            "--model", model, "--backend", backend, "--detector", detector,
            "--progress", "plain", "-y", *extra]


def stitch_command(input: str, output: str, segment_dir: str) -> list[str]:
    """The stitch layer's command."""
    return [GPEN_VIDEO, "stitch", segment_dir, "--audio-from", input, output, "--reencode",
            "--progress", "plain", "-y"]


def clip_frames(path: str) -> str:
    """``0-(N-1)`` for the clip at ``path`` (needs gpen-video installed here)."""
    from gpen_video.farm.stitch import source_timeline

    return f"0-{source_timeline(path).count - 1}"


def overlap(text: str) -> str:
    """``auto`` or a frame count (gpen-video's ``--overlap``)."""
    if text != "auto" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give auto or a number of frames")
    return text


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after -- go to gpen-video unchanged.")
    parser.add_argument("input", help="the clip to restore (on storage every render node sees)")
    parser.add_argument("output", help="the finished movie the stitch job writes")
    parser.add_argument("--segment-dir", required=True,
                        help="shared folder for the chunks' segments (stitch reads them there)")
    parser.add_argument("--frames", default=None,
                        help="A-B, 0-based in display order (default: the whole clip, counted "
                        "here with gpen-video)")
    parser.add_argument("--chunk", type=int, default=100,
                        help="frames per render task (default: %(default)s)")
    parser.add_argument("--overlap", type=overlap, default="auto", metavar="auto|N",
                        help="gpen-video --overlap: auto decodes the frames before and after "
                        "each chunk that make the job render what one run of the clip renders; "
                        "N only N frames before it (default: %(default)s)")
    parser.add_argument("--model", default="GPEN-BFR-512",
                        help="gpen-video --model (default: %(default)s)")
    parser.add_argument("--backend", default="auto",
                        help="gpen-video --backend (default: %(default)s)")
    parser.add_argument("--detector", default="resnet50",
                        help="gpen-video --detector (default: %(default)s)")
    parser.add_argument("--name", default="gpen-video", help="job name (default: %(default)s)")
    parser.add_argument("--show", default="testing", help="OpenCue show (default: %(default)s)")
    parser.add_argument("--shot", default="shot01", help="OpenCue shot (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the two layers' command lines, submit nothing (no PyOutline "
                        "needed)")
    extra: list[str] = []
    if "--" in argv:  # everything after -- goes to gpen-video unchanged
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.extra = extra
    return args


def build_outline(args: argparse.Namespace):  # -> outline.Outline
    """The job: layer ``restore`` (chunked), layer ``stitch`` (one frame, after all of it)."""
    import outline
    from outline.modules.shell import Shell

    ol = outline.Outline(args.name, shot=args.shot, show=args.show, user=getpass.getuser())
    restore = Shell("restore", command=restore_command(
        args.input, args.segment_dir, args.overlap, args.model, args.backend, args.detector,
        args.extra), range=args.frames, chunk=args.chunk, threads=1)
    stitch = Shell("stitch", command=stitch_command(args.input, args.output, args.segment_dir),
                   range="1", chunk=1, threads=1)
    stitch.depend_all(restore)
    ol.add_layer(restore)
    ol.add_layer(stitch)
    return ol


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.frames is None:
        args.frames = clip_frames(args.input)
    if args.dry_run:
        print("restore:", args.frames, f"chunk {args.chunk}:",
              shlex.join(restore_command(args.input, args.segment_dir, args.overlap, args.model,
                                         args.backend, args.detector, args.extra)))
        print("stitch:", shlex.join(stitch_command(args.input, args.output, args.segment_dir)))
        return 0
    import outline.cuerun

    outline.cuerun.launch(build_outline(args), use_pycuerun=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
