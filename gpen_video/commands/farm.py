"""``gpen-video farm IN OUT --chunk 300 [--ray-address auto|HOST:PORT]``: render on Ray.

Takes every option of ``gpen-video IN OUT`` (model, backend, faces, encoding, ``--frames``…;
``--overlap`` defaults to 30 here) plus the farm's own, builds
:class:`~gpen_video.options.RunOptions` and :class:`~gpen_video.options.FarmOptions` and calls
:func:`gpen_video.farm.run_farm`. Needs the ``farm`` extra (Ray).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from gpen_video.commands import run as run_command
from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import SEGMENT_MODES, FarmOptions

# seconds a signal leaves the farm to stop its workers and its local Ray cluster before the
# process ends anyway (gpen_video.shutdown)
SHUTDOWN_GRACE = 20.0


def configure(parser: argparse.ArgumentParser) -> None:
    run_command.configure_job(parser)
    parser.set_defaults(overlap=30)
    farm = parser.add_argument_group("render farm (Ray)")
    farm.add_argument("--chunk", type=int, default=300, help="frames per chunk (default 300)")
    farm.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                      help="join this Ray cluster (auto: the one `ray start` made here); "
                           "default: start a local one")
    farm.add_argument("--workers", type=int, default=None,
                      help="default: one per GPU; without GPUs one per --cpus-per-worker CPUs")
    farm.add_argument("--cpus-per-worker", type=float, default=1.0,
                      help="CPUs Ray gives each worker (its torch threads)")
    farm.add_argument("--retries", type=int, default=2,
                      help="further attempts of a chunk whose worker died or failed "
                           "transiently (default 2)")
    farm.add_argument("--segments", default="auto", choices=SEGMENT_MODES,
                      help="auto: intra delivery codecs are rendered as is and packet-copied; "
                           "long-GOP ones via lossless FFV1 segments encoded once at the end. "
                           "gop: closed-GOP segments in the delivery codec, packet-copied")
    farm.add_argument("--segment-dir", type=Path, default=None,
                      help="where segments go (shared storage on a multi-node cluster); "
                           "default: a hidden folder beside OUTPUT named after the job")
    farm.add_argument("--keep-segments", action="store_true",
                      help="keep the segments after a successful stitch")
    farm.add_argument("--verify", default="auto", choices=["auto", "none", "packets", "frames"],
                      help="the stitch's check of each segment against its manifest (a chunk "
                           "that fails is rendered again once); default auto: frames when "
                           "re-encoding, packets when packet-copying")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    from gpen_video.farm import run_farm

    if args.segment:
        raise UsageError("--segment is for single chunks (gpen-video IN SEG.mkv --frames A-B "
                         "--segment); gpen-video farm chooses its segments itself (--segments)")
    run_command.check_faces_from(args)
    # folders left open: each worker resolves them from its own environment (its machine's)
    run = run_command.options_from_args(args)
    from gpen_video.media.endpoints import refuse_chunked

    refuse_chunked(run, "gpen-video farm")
    from gpen_video.farm.ray_runner import _import_ray

    _import_ray()  # Ray missing: say so before checking (or downloading) any weights
    if args.ray_address is None:  # a local cluster: this machine's weights are the workers'
        from gpen_video.preflight import check_inputs_exist, check_torch_stack, check_weights

        check_inputs_exist(run.input)
        check_weights(run)
        check_torch_stack()
    if run.faces_from is not None:  # the faces file checked once here, not once per chunk
        from gpen_video.media import VideoSource
        from gpen_video.pipeline import _check_options, open_analysis

        _check_options(replace(run, range=replace(run.range, overlap=max(1, run.range.overlap))))
        with VideoSource(run.input, run.range) as source:
            open_analysis(run, source)
    farm = FarmOptions(chunk=args.chunk, segments=args.segments, segment_dir=args.segment_dir,
                       keep_segments=args.keep_segments, ray_address=args.ray_address,
                       workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                       retries=args.retries, verify=args.verify)
    run_farm(run, farm)
    return 0
