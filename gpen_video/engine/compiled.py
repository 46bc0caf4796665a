"""A compiled GPEN engine without TensorRT: the inference form compiled ahead of time by
PyTorch Inductor (an AOTInductor package, ``.pt2``), built once and cached beside the TensorRT
engines.

Build: :func:`torch.export.export` of the :class:`~gpen_video.models.inference.InferenceGPEN`
with its tactic plan applied (the batch axis dynamic up to the profile's maximum, static at 1 on
the CPU, which restores one face per pass), then ``aoti_compile_and_package`` with Inductor's
weight freezing (constant folding, prepacked convolution weights). The build checks the engine
against the eager inference form on random input (max abs difference at most
:data:`BUILD_TOLERANCE` of the precision) and refuses it otherwise. Later loads read the package:
a small fraction of the build (``benchmarks/RESULTS.md``, "Network speed").

Cache key: the weights' sha256, the architecture, the device model
(:func:`gpen_video.engine.tactics.device_model`), the precision, the maximum batch, the tactic plan,
the torch version and :data:`COMPILE_RECIPE`. Files:
``<label>-<size>px-<precision>-b<max>-<device>-<key[:16]>.pt2`` and a ``.json`` record beside it
(build seconds, the build check); both are written with their hash
(:mod:`gpen_video.engine.artifact`), checked on every load: a damaged package is reported, removed
and built again.

Needs a C++ compiler on the CPU (Inductor generates C++), Triton on CUDA.
:func:`compiler_missing` says which is absent; callers then run the eager form with one warning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpen_video.engine.artifact import check_artifact, remove_artifact, write_artifact
from gpen_video.engine.locking import lock_for
from gpen_video.engine.tactics import device_model
from gpen_video.models.inference import InferenceGPEN

log = logging.getLogger("gpen_video.engine")

COMPILE_RECIPE = 1  # bumped when the export or the Inductor settings change the engine
BUILD_TOLERANCE = {"fp32": 1e-4, "fp16": 3e-2, "bf16": 1e-1}  # engine vs eager form, max abs


@dataclass(frozen=True)
class CompiledKey:
    """Everything that determines a compiled engine's content."""

    weights: str  # sha256 of the plain network's state dict (onnx_cache.weights_digest)
    config: str
    size: int
    device: str
    precision: str
    max_batch: int
    plan: str  # the tactic plan as JSON
    torch: str

    def digest(self) -> str:
        record = dict(asdict(self), recipe=COMPILE_RECIPE)
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def filename(self, label: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", self.device).strip("-.").lower()[:40]
        name = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-.") or "gpen"
        return (f"{name}-{self.size}px-{self.precision}-b{self.max_batch}-{slug}-"
                f"{self.digest()[:16]}.pt2")


@dataclass
class CompiledEngine:
    """A loaded engine: call it like the network (N×3×S×S in the form's dtype and device)."""

    runner: Any
    path: Path
    built: bool  # True: built by this call; False: loaded from the cache
    build_seconds: float  # of the build (this call's, or the recorded one)
    load_seconds: float  # of loading the package in this call
    max_abs_diff: float  # the build check's

    def __call__(self, x: Any) -> Any:
        out = self.runner(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def compiler_missing(device: str) -> str | None:
    """Why Inductor cannot compile for ``device`` here, or None."""
    if device.startswith("cuda"):
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed (it comes with PyTorch's CUDA wheels on Linux)"
        return None
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return None
    return "no C++ compiler found (install g++ or clang++, or set CXX)"


def compiled_key(form: InferenceGPEN, weights_sha256: str, device: str, precision: str,
                 max_batch: int) -> CompiledKey:
    import torch

    plan = json.dumps(form.current_plan().as_dict(), sort_keys=True)
    return CompiledKey(weights=weights_sha256, config=json.dumps(asdict(form.config),
                                                                 sort_keys=True),
                       size=form.config.size, device=device_model(device), precision=precision,
                       max_batch=int(max_batch), plan=plan, torch=torch.__version__)


def compiled_engine(form: InferenceGPEN, weights_sha256: str, device: str, precision: str,
                    max_batch: int, folder: Path, label: str = "gpen",
                    notice=None) -> CompiledEngine:
    """The compiled engine of ``form`` (on ``device`` in ``precision``, tactics applied) from
    ``folder``'s cache, built now if it is not there.

    ``notice``: a callable told (one line) when a build starts (it takes a while).

    Raises:
        RuntimeError: the build failed or its check did not pass (callers fall back to eager).
        TransientError: another process held the build lock too long.
    """
    key = compiled_key(form, weights_sha256, device, precision, max_batch)
    path = Path(folder) / key.filename(label)
    engine = _load(path, device)
    if engine is not None:
        return engine
    with lock_for(path):
        engine = _load(path, device)  # another process may have built it while we waited
        if engine is not None:
            return engine
        if notice is not None:
            notice(f"compiling {label} with Inductor for {key.device}, {precision}, batch ≤ "
                   f"{max_batch}: {path.name}")
        start = time.perf_counter()
        diff = _build(form, device, precision, max_batch, path)
        seconds = time.perf_counter() - start
        record = {"key": asdict(key), "recipe": COMPILE_RECIPE, "build_seconds": round(seconds, 2),
                  "max_abs_diff": diff,
                  "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_artifact(path.with_suffix(".json"),
                       json.dumps(record, indent=1, sort_keys=True).encode())
    engine = _load(path, device)
    if engine is None:
        raise RuntimeError(f"the compiled engine {path} could not be loaded after its build")
    engine.built = True
    return engine


def _example(form: InferenceGPEN, batch: int, device: str, seed: int = 0) -> Any:
    import torch

    dtype = next(form.buffers()).dtype
    size = form.config.size
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    return x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)


def _build(form: InferenceGPEN, device: str, precision: str, max_batch: int, path: Path) -> float:
    """Export, compile and package ``form`` to ``path`` (written whole); returns the check's max
    abs difference against the eager form."""
    import torch
    import torch._inductor

    example = _example(form, 1, device)
    dynamic = None
    if max_batch > 1:
        # 0/1 are specialised by export: the symbolic range starts at 2, batch 1 is padded
        dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=int(max_batch))}}
        example = _example(form, 2, device)
    with torch.inference_mode(False), torch.no_grad():
        program = torch.export.export(form, (example,), dynamic_shapes=dynamic)
    found: dict[str, float] = {}

    def build(tmp: Path) -> None:  # the package written and checked before it is renamed
        package = tmp.with_name(tmp.name + ".pt2")  # Inductor wants the .pt2 ending
        try:
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(package), inductor_configs={"freezing": True})
            runner = torch._inductor.aoti_load_package(str(package))
            check = _example(form, 2 if max_batch > 1 else 1, device, seed=1)
            with torch.inference_mode():
                want = form(check)
                got = runner(check)
                got = got[0] if isinstance(got, (list, tuple)) else got
                found["diff"] = float((got.float() - want.float()).abs().max())
            if not found["diff"] <= BUILD_TOLERANCE[precision]:
                raise RuntimeError(f"the compiled engine differs from the eager network by "
                                   f"{found['diff']:.3g} (tolerance "
                                   f"{BUILD_TOLERANCE[precision]:g})")
            os.replace(package, tmp)
        finally:
            package.unlink(missing_ok=True)

    write_artifact(path, build)
    return found["diff"]


def _load(path: Path, device: str) -> CompiledEngine | None:
    """The engine at ``path``, or None when it is not there; a package whose bytes do not match
    its hash, or without its record, is reported, removed, and so built again."""
    import torch._inductor

    record_path = path.with_suffix(".json")
    if not check_artifact(path):
        remove_artifact(record_path)  # a record without its package says nothing
        return None
    try:
        record = json.loads(record_path.read_bytes()) if check_artifact(record_path) else None
        if record is None:
            raise ValueError("its record is missing or damaged")
        start = time.perf_counter()
        runner = torch._inductor.aoti_load_package(str(path))
        seconds = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 — any failure to read it means: build it again
        log.warning("the compiled engine %s cannot be used (%s): removed, building it again",
                    path, exc)
        remove_artifact(path)
        remove_artifact(record_path)
        return None
    return CompiledEngine(runner, path, False, float(record.get("build_seconds", 0.0)), seconds,
                          float(record.get("max_abs_diff", 0.0)))


def describe_compiled(folder: Path) -> list[str]:
    """Lines for ``gpen-video engine list``: each compiled engine, what it is for, its build
    time and check."""
    lines = []
    for record_path in sorted(Path(folder).glob("*.json")):
        package = record_path.with_suffix(".pt2")
        if not package.is_file():
            continue
        try:
            record = json.loads(record_path.read_text())
            key = record["key"]
            line = (f"compiled {package.name}  {key['size']}px {key['precision']} batch ≤ "
                    f"{key['max_batch']} on {key['device']}, torch {key['torch']}: built in "
                    f"{record['build_seconds']:.0f} s, max diff {record['max_abs_diff']:.2g} "
                    "vs eager")
        except (OSError, ValueError, KeyError, TypeError):
            line = f"damaged  {package.name}  (no readable record; rebuilt on next use)"
        lines.append(line)
    return lines
