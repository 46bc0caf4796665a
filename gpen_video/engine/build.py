"""Engines as explicit, cached steps: GPEN → ONNX (cached) → TensorRT plan (cached, gated).

:func:`build_serialized` is the TensorRT 10/11 builder: a strongly typed network parsed from the
dynamic-batch ONNX — for FP16/BF16 the graph with the precision plan written into it
(:mod:`gpen_video.engine.mixed`, :mod:`gpen_video.engine.precision`) — one optimisation profile
(min/opt/max batch), the shared timing cache (:mod:`gpen_video.engine.timing_cache`),
``build_serialized_network``.

:func:`ensure_engine` is what ``gpen-video engine build`` and the ``tensorrt`` backend's first
use call: find the plan for the key (:mod:`gpen_video.engine.key`) in the engine folder, or build
it under the plan's file lock (one builder per key across processes), run the FP16/BF16 quality
gate (:mod:`gpen_video.engine.gate`) against the FP32 torch model on the same GPU, and write
``<plan>.plan`` + ``<plan>.json`` (the key and the gate's numbers) only when it passes. A rejected
build leaves ``<plan>.rejected.json`` with its numbers, so later runs fail at once with the same
advice instead of rebuilding (``--force`` rebuilds).

The engine step knows nothing of who runs a plan (builders never import runners): the caller
passes the two restorers the gate compares as a :class:`GateRunners` — the ``tensorrt`` backend's
:func:`~gpen_video.backends.tensorrt_backend.gate_runners` in the product.

FP16 is tried with the :data:`~gpen_video.engine.precision.FP16_POLICIES` in order (style path in
FP32; then also ≤ 32 px layers) until one passes the gate. BF16 keeps the style path in FP32.
FP32 engines are built with TF32 off.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpen_video.engine.gate import (GATE_IMAGES, GATE_PSNR_DB, GateReport, load_gate_faces,
                                    require_pass, run_gate)
from gpen_video.engine.key import EngineKey, cuda_device_info, timing_cache_name
from gpen_video.engine.artifact import check_artifact, damage, write_artifact
from gpen_video.engine.locking import lock_for
from gpen_video.engine.onnx_cache import cached_onnx, file_sha256
from gpen_video.engine.paths import engine_dir, require_writable
from gpen_video.engine.precision import FP16_POLICIES, PinPolicy
from gpen_video.engine.profile import Profile
from gpen_video.engine.timing_cache import TimingCacheFile
from gpen_video.engine.trt import import_tensorrt
from gpen_video.errors import GpenVideoError
from gpen_video.options import ENGINE_PRECISIONS

if TYPE_CHECKING:
    import torch

    from gpen_video.backends.base import Restorer

logger = logging.getLogger("gpen_video.engine")

WORKSPACE_BYTES = 8 << 30  # builder scratch memory limit (tactics needing more are skipped)


@dataclass(frozen=True)
class EngineRequest:
    """Which engine to get, and how to judge it."""

    precision: str = "fp16"  # fp32 | fp16 | bf16
    profile: Profile = Profile()
    device: str = "cuda:0"
    label: str = "gpen"  # model name, for file names and messages
    engine_dir: Path | None = None
    gate_images: Path | None = None
    threshold_db: float = GATE_PSNR_DB
    force: bool = False  # rebuild even when a plan (or a rejection) is cached


@dataclass(frozen=True)
class GateRunners:
    """The two restorers the quality gate compares, made by the caller.

    ``candidate(plan_bytes, size, device, label)`` runs a serialised plan; ``reference(net,
    device, size)`` runs ``net`` (a copy the callee may move) in FP32.
    """

    candidate: Callable[[bytes, int, str, str], "Restorer"]
    reference: Callable[[Any, str, int], "Restorer"]


@dataclass(frozen=True)
class BuiltEngine:
    path: Path  # the .plan file
    key: EngineKey
    report: GateReport
    built: bool  # False: it came from the cache


def _notice(line: str) -> None:
    # WARNING so it shows without logging configured: the user must know why nothing moves
    logger.warning(line)


def ensure_engine(net: "torch.nn.Module", request: EngineRequest, runners: GateRunners,
                  log: Callable[[str], None] = _notice) -> BuiltEngine:
    """The gated engine of ``net`` for ``request``: from the cache, or built now (and judged
    by the gate with ``runners``).

    Raises:
        BackendUnavailable: no TensorRT, no CUDA GPU, or a precision this TensorRT lacks.
        GateRejected: the engine (now or earlier, same key) failed the quality gate.
        UsageError: the gate's face crops are missing.
        GpenVideoError: TensorRT could not parse or build the network.
    """
    trt = import_tensorrt()
    device = cuda_device_info(request.device)
    folder = engine_dir(request.engine_dir, writable=False)  # read-only: used if it holds it
    size = int(net.config.size)
    onnx_path = cached_onnx(net, folder, label=request.label, log=log)
    key = EngineKey(onnx_sha256=file_sha256(onnx_path), tensorrt_version=trt.__version__,
                    device=device, precision=request.precision, profile=request.profile,
                    size=size)
    plan = folder / key.filename(request.label)
    report_path = plan.with_suffix(".json")
    rejected_path = plan.with_suffix(".rejected.json")

    cached = _cached(plan, report_path, rejected_path, request)
    if cached is not None:
        return BuiltEngine(plan, key, cached, built=False)
    require_writable(folder, plan.name)
    with lock_for(plan):
        # built while we waited? (damaged files are named, removed and rebuilt here)
        cached = _cached(plan, report_path, rejected_path, request, heal=True)
        if cached is not None:
            return BuiltEngine(plan, key, cached, built=False)
        faces = load_gate_faces(size, request.gate_images)  # fail before minutes of building
        log(f"building the TensorRT {request.precision} engine for {request.label} "
            f"({size} px, batch {request.profile.min}/{request.profile.opt}/"
            f"{request.profile.max}) on {device.name}: a one-time cost, typically several "
            f"minutes; later runs load it from {plan}")
        data, report = _build_and_gate(onnx_path, net, key, request, faces, folder, runners,
                                       log)
        if not report.passed:
            report.write(rejected_path)
            require_pass(report, request.precision)  # raises
        write_artifact(plan, data)
        report.write(report_path)
        rejected_path.unlink(missing_ok=True)
        log(f"engine ready: {plan.name} ({report.summary()})")
        return BuiltEngine(plan, key, report, built=True)


def _cached(plan: Path, report_path: Path, rejected_path: Path,
            request: EngineRequest, heal: bool = False) -> GateReport | None:
    """The cached verdict of a sound plan (or a cached rejection, raised). ``heal`` (under the
    lock): damaged files are named, removed and so rebuilt (:mod:`gpen_video.engine.artifact`)."""
    if request.force:
        return None
    sound = check_artifact if heal else (lambda p: damage(p) is None)
    if sound(plan) and sound(report_path):
        report = GateReport.read(report_path)
        if report.passed and report.threshold_db >= request.threshold_db:
            return report
    if sound(rejected_path):
        report = GateReport.read(rejected_path)
        if report.threshold_db <= request.threshold_db:
            require_pass(report, request.precision)  # raises: same key, same verdict
    return None


def _build_and_gate(onnx_path: Path, net: Any, key: EngineKey, request: EngineRequest,
                    faces: Any, folder: Path, runners: GateRunners,
                    log: Callable[[str], None]) -> tuple[bytes, GateReport]:
    timing = TimingCacheFile(folder / timing_cache_name(key.tensorrt_version, key.device))
    # a copy: the reference may move its module to the device; the caller's net stays as it is
    reference = runners.reference(copy.deepcopy(net), request.device, key.size)
    policies: tuple[PinPolicy | None, ...]
    if request.precision == "fp16":
        policies = FP16_POLICIES
    elif request.precision == "bf16":
        policies = (FP16_POLICIES[0],)
    else:
        policies = (None,)
    data, report = b"", None
    try:
        for policy in policies:
            start = time.perf_counter()
            data, info = build_serialized(onnx_path, request.precision, request.profile,
                                          key.size, policy=policy, timing_cache=timing)
            info["build_seconds"] = round(time.perf_counter() - start, 1)
            info["key"] = key.as_dict()
            candidate = runners.candidate(data, key.size, request.device,
                                          f"{request.label} {request.precision}")
            try:
                report = run_gate(candidate, reference, faces, request.threshold_db,
                                  images=GATE_IMAGES, extra=info)
            finally:
                candidate.close()
            log(f"{request.precision} engine"
                f"{f' (FP32 kept for: {policy.name})' if policy else ''}: {report.summary()}")
            if report.passed:
                break
    finally:
        reference.close()
    assert report is not None
    return data, report


def build_serialized(onnx_path: Path | str, precision: str, profile: Profile, size: int, *,
                     policy: PinPolicy | None = None,
                     timing_cache: TimingCacheFile | None = None,
                     workspace_bytes: int = WORKSPACE_BYTES) -> tuple[bytes, dict]:
    """Build a serialised TensorRT engine (the plan's bytes) from a dynamic-batch ONNX file.

    The network is strongly typed (TensorRT 10's ``STRONGLY_TYPED`` creation flag; always so in
    TensorRT 11): it computes in the types the graph gives it. FP32 builds the FP32 export as it
    is, with TF32 off; FP16/BF16 build the graph :func:`~gpen_video.engine.mixed.mixed_onnx`
    rewrites under ``policy`` (the style path, and what else the policy keeps, in FP32).

    Returns the bytes and a record of what was asked for (precision, policy, graph, layers).

    Raises:
        BackendUnavailable: no TensorRT (or no onnx/onnxruntime for the FP16/BF16 rewrite).
        GpenVideoError: the rewrite, the parser or the builder failed (their messages included).
    """
    from gpen_video.engine.mixed import mixed_onnx

    trt = import_tensorrt()
    if precision not in ENGINE_PRECISIONS:
        raise GpenVideoError(f"unknown engine precision {precision!r}: choose one of "
                             f"{', '.join(ENGINE_PRECISIONS)}")
    graph = Path(onnx_path)
    if precision != "fp32":
        graph = mixed_onnx(graph, precision, policy or FP16_POLICIES[0])
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(graph)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise GpenVideoError(f"TensorRT could not parse {graph}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # what the graph says is FP32 stays true FP32
    input_name = network.get_input(0).name
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(input_name, *profile.shapes(size))
    config.add_optimization_profile(trt_profile)

    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache.read())
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise GpenVideoError(f"TensorRT failed to build the {precision} engine from {graph} "
                             "(see the TensorRT messages above); try --precision fp32, or a "
                             "smaller --max-batch if the GPU ran out of memory")
    if timing_cache is not None and cache is not None:
        timing_cache.update(lambda current: _merge_timing(config, current))
    info = {"precision": precision, "policy": policy.name if policy else None,
            "graph": graph.name, "layers": network.num_layers, "tensorrt": trt.__version__}
    return bytes(serialized), info


def strongly_typed_flags(trt: Any) -> int:
    """``create_network`` flags for a strongly typed network: the ``STRONGLY_TYPED`` bit where
    the enum has it (TensorRT 10; TensorRT 11 accepts it and is strongly typed anyway)."""
    flag = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _merge_timing(config: Any, current: bytes) -> bytes:
    """What is on disk (``current``) plus what this build learnt, as bytes."""
    merged = config.create_timing_cache(current)
    merged.combine(config.get_timing_cache(), False)
    return bytes(merged.serialize())
