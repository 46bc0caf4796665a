"""``gpen-video download NAME…``: fetch official weights into the cache ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.models import weights


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"registry names: {', '.join(weights.REGISTRY)} (default: "
                             "GPEN-BFR-512 and retinaface-resnet50)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where to put the files (default: $GPEN_VIDEO_HOME/weights or "
                             "~/.cache/gpen-video/weights)")
    parser.add_argument("--list", action="store_true", help="list the registry and exit")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    if args.list:
        for spec in weights.REGISTRY.values():
            print(f"{spec.name:<24}{spec.url}")
        return 0
    for name in args.names or ["GPEN-BFR-512", "retinaface-resnet50"]:
        folder = args.cache_dir or weights.default_cache_dir(env)
        path = weights.resolve_weights(name, cache_dir=folder, download_missing=True)
        print(f"{name}: {path}")
    return 0
