"""``gpen-video engine build|list|clean``: build TensorRT engines or compiled torch engines ahead
of time, list the cache, delete what no longer applies.

``build --backend torch`` (the default without TensorRT) times the network's tactics on this
device and compiles its inference form with Inductor (:mod:`gpen_video.engine.tactics`,
:mod:`gpen_video.engine.compiled`), as a run with ``--compile on`` does on first use.

``build`` does what the ``tensorrt`` backend does on first use, without a video: export the
dynamic-batch ONNX (cached), build the engine for this GPU, precision and batch profile, run the
quality gate against FP32 torch on real face crops, and cache the plan with its gate report.
Without TensorRT it exits 2 with one line saying how to install it. ``list`` shows the cached
engines and their gate results (no GPU needed). ``clean`` deletes the files this version will not
use again (:mod:`gpen_video.engine.clean`); ``--dry-run`` only lists them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import UsageError
from gpen_video.options import ENGINE_PRECISIONS


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    fmt = {"formatter_class": parser.formatter_class}  # defaults shown (gpen_video.cli)
    build = sub.add_parser("build", help="build a TensorRT engine (gated) or a compiled torch "
                                         "engine for this device", **fmt)
    build.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "torch"),
                       help="tensorrt: a TensorRT plan (CUDA); torch: tactics timed and the "
                            "network compiled with Inductor (CPU or CUDA); auto: tensorrt when "
                            "installed, else torch")
    build.add_argument("--model", default="GPEN-BFR-512",
                       help="GPEN-BFR-256|512|1024|2048 or the path of a GPEN .pth file")
    build.add_argument("--random-weights", action="store_true",
                       help="the architecture with random weights (plumbing and speed only)")
    build.add_argument("--seed", type=int, default=0, help="seed of --random-weights")
    build.add_argument("--precision", default="auto", choices=("auto", *ENGINE_PRECISIONS),
                       help="fp16 is accepted only if it passes the quality gate; auto "
                            "(default): fp16 on CUDA, fp32 on the CPU")
    build.add_argument("--batch", type=int, default=None,
                       help="batch the engine is tuned for (profile opt; default 8)")
    build.add_argument("--max-batch", type=int, default=None,
                       help="largest batch the engine takes (profile max; default 32)")
    build.add_argument("--device", default="auto",
                       help="the device to build for: cuda:N, or cpu (torch only); auto "
                            "(default): the first GPU, else the CPU")
    build.add_argument("--engine-dir", type=Path, default=None,
                       help="engine cache folder (default: engines/ of a checkout, else the "
                            "user cache; $GPEN_VIDEO_ENGINES overrides)")
    build.add_argument("--gate-images", type=Path, default=None,
                       help="folder with the quality gate's face crops "
                            "($GPEN_VIDEO_GATE_IMAGES; default: the crops shipped with the package)")
    build.add_argument("--gate-psnr", type=float, default=None,
                       help="quality gate threshold in dB (default 40)")
    build.add_argument("--force", action="store_true",
                       help="rebuild even if a plan (or a rejection) is cached")
    build.add_argument("--cache-dir", type=Path, default=None, help="weights cache folder")
    build.add_argument("--no-download", action="store_true",
                       help="never download weights; fail if they are not cached")
    listing = sub.add_parser("list", help="list cached engines and their quality-gate results, "
                                          "and damaged or orphaned cache files", **fmt)
    listing.add_argument("--engine-dir", type=Path, default=None, help="engine cache folder")
    clean = sub.add_parser("clean", help="delete cached exports, graphs and engines of earlier "
                                         "recipes or TensorRT versions, and damaged or "
                                         "orphaned cache files", **fmt)
    clean.add_argument("--engine-dir", type=Path, default=None, help="engine cache folder")
    clean.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")


def execute(args: argparse.Namespace, env: Environment | None = None) -> int:
    if args.action == "list":
        return _list(args, env)
    if args.action == "clean":
        return _clean(args, env)
    return _build(args, env)


def _clean(args: argparse.Namespace, env: Environment | None) -> int:
    from gpen_video.engine.clean import stale_files
    from gpen_video.engine.paths import default_engine_dir
    from gpen_video.engine.trt import import_tensorrt, tensorrt_present
    from gpen_video.errors import BackendUnavailable

    folder = Path(args.engine_dir) if args.engine_dir is not None else default_engine_dir(env)
    version = None
    if tensorrt_present():
        try:
            version = import_tensorrt().__version__
        except BackendUnavailable:
            version = None  # not loadable here: judge plans by recipe only
    import torch

    from gpen_video.engine.artifact import hash_path
    from gpen_video.engine.clean import Stale, cache_problems

    stale = stale_files(folder, version, torch_version=torch.__version__)
    known = {s.path for s in stale}
    stale += [Stale(p, why) for p, why in cache_problems(folder) if p not in known]
    freed = 0
    for item in stale:
        try:
            size = item.path.stat().st_size
        except FileNotFoundError:
            continue
        if not args.dry_run:
            try:
                item.path.unlink()
                if not item.path.name.endswith(".sha256"):
                    hash_path(item.path).unlink(missing_ok=True)
            except FileNotFoundError:
                continue  # another clean got there first
        freed += size
        print(f"{'would delete' if args.dry_run else 'deleted'} {item.path.name}: {item.why}")
    verb = "would free" if args.dry_run else "freed"
    print(f"{folder}: {len(stale)} stale file(s), {verb} {freed / 1e6:.1f} MB"
          + ("" if version else " (TensorRT not installed: plans judged by recipe only)"))
    return 0


def _build(args: argparse.Namespace, env: Environment | None) -> int:
    from gpen_video.engine.trt import import_tensorrt, tensorrt_present

    backend = args.backend
    if backend == "auto":
        backend = "tensorrt" if tensorrt_present() else "torch"
    if backend == "torch":
        return _build_torch(args, env)
    import_tensorrt()  # exit 2 with the one line, before loading any weights
    if args.precision == "auto":
        args.precision = "fp16"
    from gpen_video.backends.tensorrt_backend import gate_runners
    from gpen_video.backends.torch_backend import resolve_device
    from gpen_video.engine.build import EngineRequest, ensure_engine
    from gpen_video.engine.gate import GATE_PSNR_DB, default_gate_dir
    from gpen_video.engine.paths import default_engine_dir
    from gpen_video.engine.profile import select_profile
    from gpen_video.models.load import load_gpen
    from gpen_video.models.weights import default_cache_dir

    profile = select_profile(args.batch, args.max_batch)
    device = resolve_device(args.device)
    if not device.startswith("cuda"):
        raise UsageError(f"--device {args.device}: TensorRT engines are built on a CUDA GPU")
    net = load_gpen(args.model, cache_dir=args.cache_dir or default_cache_dir(env),
                    download=not args.no_download,
                    random_weights=args.random_weights, seed=args.seed)
    label = Path(str(args.model)).stem
    if args.random_weights:
        label += f"-random{args.seed}"
    request = EngineRequest(precision=args.precision, profile=profile, device=device,
                            label=label, engine_dir=args.engine_dir or default_engine_dir(env),
                            gate_images=args.gate_images or default_gate_dir(env),
                            threshold_db=args.gate_psnr if args.gate_psnr is not None
                            else GATE_PSNR_DB, force=args.force)
    built = ensure_engine(net, request, gate_runners(), log=print)
    state = "built" if built.built else "already cached"
    print(f"{built.path} ({state}; {built.report.summary()})")
    return 0


def _build_torch(args: argparse.Namespace, env: Environment | None) -> int:
    """Time the tactics and compile the network for ``--device`` (what ``--compile on`` does on
    a run's first use); print what was built or found, with the times."""
    import time

    from gpen_video.backends.torch_backend import TorchRestorer
    from gpen_video.engine.paths import default_engine_dir
    from gpen_video.errors import BackendUnavailable
    from gpen_video.models.weights import default_cache_dir
    from gpen_video.options import ModelOptions, RestoreOptions

    model_path = Path(args.model) if str(args.model).endswith((".pth", ".pt")) else None
    model = ModelOptions(name=model_path.stem if model_path else args.model,
                         checkpoint_path=model_path,
                         cache_dir=args.cache_dir or default_cache_dir(env),
                         download=not args.no_download, random_weights=args.random_weights)
    restore = RestoreOptions(backend="torch", device=args.device, precision=args.precision,
                             batch=args.batch or 8, max_batch=args.max_batch,
                             engine_dir=args.engine_dir or default_engine_dir(env),
                             compile="on", tactics="timed")
    restorer = TorchRestorer(model, restore, seed=args.seed, gate_images=args.gate_images)
    start = time.perf_counter()
    restorer.load()
    seconds = time.perf_counter() - start
    tactics, engine = restorer.tactics, restorer.engine
    if tactics is not None:
        how = (f"timed in {tactics.seconds:.1f} s" if tactics.timed else "from the cache")
        print(f"tactics ({how}): {tactics.path}")
    if engine is None:
        raise BackendUnavailable("the network could not be compiled here (the warning above "
                                 "says why); runs use the eager network")
    state = (f"built in {engine.build_seconds:.1f} s" if engine.built else
             f"already cached (built in {engine.build_seconds:.1f} s), loaded in "
             f"{engine.load_seconds:.2f} s")
    print(f"{engine.path} ({state}; {restorer.describe()}; max diff vs eager "
          f"{engine.max_abs_diff:.2g}; {seconds:.1f} s in all)")
    return 0


def _list(args: argparse.Namespace, env: Environment | None) -> int:
    from gpen_video.engine.compiled import describe_compiled
    from gpen_video.engine.paths import default_engine_dir
    from gpen_video.engine.tactics import describe_tactics

    from gpen_video.engine.clean import cache_problems

    folder = Path(args.engine_dir) if args.engine_dir is not None else default_engine_dir(env)
    rows = describe_engines(folder) + describe_compiled(folder) + describe_tactics(folder)
    problems = cache_problems(folder)
    if not rows:
        print(f"no engines in {folder}")
    for row in rows:
        print(row)
    for path, why in problems:
        kind, _, detail = why.partition(": ") if why.startswith("damaged") else ("orphaned", "",
                                                                                  why)
        print(f"{kind:<9}{path.name}  {detail}")
    if problems:
        print(f"{len(problems)} damaged or orphaned file(s): the next run rebuilds what it "
              "needs; `gpen-video engine clean` deletes them")
    return 0


def describe_engines(folder: Path) -> list[str]:
    """One line per cached engine (or rejected build) in ``folder``: file, gate verdict, PSNR."""
    lines = []
    for report in sorted(folder.glob("*.json")):
        if report.name.endswith(".rejected.json"):
            plan, verdict = report.name[:-len(".rejected.json")] + ".plan", "rejected"
        else:
            plan, verdict = report.with_suffix(".plan").name, "ok"
            if not (folder / plan).is_file():
                continue
        try:
            record = json.loads(report.read_text())
            psnr = record["psnr_db"]
            psnr_text = f"{float(psnr):.1f} dB" if psnr not in ("inf",) else "identical"
            extra = record.get("extra", {})
            detail = (f"{extra.get('precision', '?')}, gate {psnr_text} "
                      f"(threshold {record['threshold_db']:g} dB)")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours
        lines.append(f"{verdict:<9}{plan}  {detail}")
    return lines
