"""``gpen-video export --model NAME|PATH OUT.onnx``: GPEN to ONNX with a dynamic batch axis.

The file is checked with ``onnx.checker`` and, unless ``--no-verify``, run by onnxruntime at
batch 1 and 2 and compared with torch (fp32, CPU). ``--random-weights`` exports the registry
architecture (or ``--size/--channel-multiplier/--narrow``) with random weights: for plumbing and
speed tests only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import GpenVideoError, OutputError, UsageError

TOLERANCE = 1e-3  # max abs difference accepted between onnxruntime and torch (fp32)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, metavar="OUT.onnx", help="ONNX file to write")
    parser.add_argument("--model", default="GPEN-BFR-512",
                        help="GPEN-BFR-256|512|1024|2048 or the path of a GPEN .pth file")
    parser.add_argument("--random-weights", action="store_true",
                        help="the architecture with random weights (plumbing and speed only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-weights")
    arch = parser.add_argument_group(
        "architecture (default: the registry entry's; with a file, the file must match)")
    arch.add_argument("--size", type=int, default=None, help="input/output side in pixels")
    arch.add_argument("--channel-multiplier", type=int, default=None,
                      help="channel multiplier of the decoder (1 for GPEN-BFR-256, 2 for 512 …)")
    arch.add_argument("--narrow", type=float, default=None,
                      help="channel width factor (0.5 for GPEN-BFR-256, 1 for 512 …)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="weights cache folder")
    parser.add_argument("--no-download", action="store_true",
                        help="never download weights; fail if they are not cached")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime comparison (it runs 3 faces through both)")
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace OUT.onnx")


def _architecture(args: argparse.Namespace):
    """The GpenConfig asked for on the command line, or None to take the model's own."""
    from gpen_video.models.config import GpenConfig
    from gpen_video.models.weights import REGISTRY

    overrides = {k: v for k, v in (("size", args.size),
                                   ("channel_multiplier", args.channel_multiplier),
                                   ("narrow", args.narrow)) if v is not None}
    if not overrides:
        return None
    spec = REGISTRY.get(args.model)
    if spec is not None and spec.gpen is not None:
        base = spec.gpen
    elif Path(args.model).is_file():  # the file's own architecture, with the overrides on top
        from gpen_video.models.load import infer_config, read_state_dict

        path = Path(args.model)
        base = infer_config(read_state_dict(path), path)
    else:
        base = GpenConfig(512)
    fields = {**base.__dict__, **overrides}
    try:
        return GpenConfig(**fields)
    except ValueError as exc:
        raise UsageError(f"--size/--channel-multiplier/--narrow: {exc}") from None


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    if args.output.exists() and not args.overwrite:
        raise OutputError(f"{args.output} exists: pass -y to replace it")
    if args.opset < 17:
        raise UsageError(f"--opset {args.opset}: GPEN export needs opset 17 or newer")
    expect = _architecture(args)

    from gpen_video.models.export import compare_with_onnxruntime, export_onnx
    from gpen_video.models.load import load_gpen

    if args.random_weights and expect is not None:
        from gpen_video.models.load import build_gpen

        model = build_gpen(expect, seed=args.seed)
    else:
        from gpen_video.models.weights import default_cache_dir

        model = load_gpen(args.model, cache_dir=args.cache_dir or default_cache_dir(env),
                          download=not args.no_download,
                          random_weights=args.random_weights, seed=args.seed, expect=expect)
    path = export_onnx(model, args.output, opset=args.opset)
    print(f"wrote {path} (size {model.config.size}, opset {args.opset}, dynamic batch)")
    if not args.no_verify:
        errors = compare_with_onnxruntime(model, path, batches=(1, 2))
        worst = max(errors.values())
        summary = ", ".join(f"batch {b}: {e:.2e}" for b, e in errors.items())
        if worst > TOLERANCE:
            path.unlink(missing_ok=True)
            raise GpenVideoError(f"onnxruntime differs from torch by up to {worst:.2e} "
                                 f"({summary}), over {TOLERANCE:g}: the export is wrong, "
                                 "the file was removed; report it")
        print(f"onnxruntime matches torch: max abs difference {summary}")
    return 0
