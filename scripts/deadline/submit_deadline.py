#!/usr/bin/env python3
"""Submit a gpen-video job to Deadline: a CommandLine job over frame chunks, then a stitch job.

    python submit_deadline.py IN.mov OUT.mov --segment-dir //server/job/segments \\
        --frames 0-1199 --chunk 100 [--overlap auto] [--model GPEN-BFR-512] [-- EXTRA ARGS]

The four ``*_info.txt`` files beside this script are the templates (``${NAME}`` placeholders are
filled here; ``<STARTFRAME>``, ``<ENDFRAME>`` and ``<QUOTE>`` are Deadline's own tokens, replaced
per task by the CommandLine plugin). The restore job runs once per chunk of ``ChunkSize`` frames;
an end past the clip is clamped by gpen-video. The stitch job waits for it (``JobDependencies``).
gpen-video prints ``Progress: N%`` lines (``--progress plain``) and exits 0 done, 2 bad input
(do not retry), 75 transient (retry).

Submission runs ``deadlinecommand JOB_INFO PLUGIN_INFO`` twice and reads the ``JobID=`` line of
the first answer. ``--dry-run`` writes the filled files to ``--out-dir`` and submits nothing.
"""

from __future__ import annotations

import argparse
import re
import shlex
import string
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = ("restore_job_info.txt", "restore_plugin_info.txt", "stitch_job_info.txt",
             "stitch_plugin_info.txt")


def fill(template: str | Path, values: dict[str, str]) -> str:
    """A template with its ``${NAME}`` placeholders replaced (a missing one is an error)."""
    return string.Template(Path(template).read_text()).substitute(values)


def values_from(args: argparse.Namespace, restore_job_id: str = "") -> dict[str, str]:
    return {"NAME": args.name, "INPUT": args.input, "OUTPUT": args.output,
            "SEGMENT_DIR": args.segment_dir, "FRAMES": args.frames, "CHUNK": str(args.chunk),
            "OVERLAP": str(args.overlap), "MODEL": args.model, "BACKEND": args.backend,
            "DETECTOR": args.detector, "EXTRA_ARGS": shlex.join(args.extra),
            "GPEN_VIDEO": args.gpen_video, "RESTORE_JOB_ID": restore_job_id}


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
    parser.add_argument("--gpen-video", default="gpen-video",
                        help="the executable on the nodes (default: %(default)s)")
    parser.add_argument("--deadlinecommand", default="deadlinecommand",
                        help="Deadline's command-line client (default: %(default)s)")
    parser.add_argument("--out-dir", default=None,
                        help="where the filled job files go (default: a new temporary folder)")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the filled files, submit nothing")
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.extra = extra
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.frames is None:
        from gpen_video.farm.stitch import source_timeline

        args.frames = f"0-{source_timeline(args.input).count - 1}"
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="gpen-video-deadline-"))
    out.mkdir(parents=True, exist_ok=True)

    def write(names: tuple[str, str], job_id: str = "") -> list[str]:
        files = []
        for name in names:
            target = out / name
            target.write_text(fill(HERE / name, values_from(args, job_id)))
            files.append(str(target))
        return files

    restore = write(TEMPLATES[:2])
    if args.dry_run:
        write(TEMPLATES[2:], "<restore job id>")
        print(f"wrote {', '.join(TEMPLATES)} to {out}")
        return 0
    answer = subprocess.run([args.deadlinecommand, *restore], capture_output=True, text=True,
                            check=True).stdout
    match = re.search(r"^JobID=(\S+)", answer, re.MULTILINE)
    if match is None:
        print(f"deadlinecommand gave no JobID:\n{answer}", file=sys.stderr)
        return 1
    stitch = write(TEMPLATES[2:], match.group(1))
    subprocess.run([args.deadlinecommand, *stitch], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
