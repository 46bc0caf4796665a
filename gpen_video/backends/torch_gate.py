"""The quality gate for half precision on the ``torch`` backend, and its fallback.

fp16 or bf16 GPEN in torch is used only after it passed the same gate as a TensorRT engine
(:mod:`gpen_video.engine.gate`: worst-face PSNR ≥ 40 dB against strict FP32 on the fixed real face
crops). The gate runs the first time a combination is used — the weights (sha256 of the
network's tensors), the GPU (name and compute capability), the precision and the torch version:
everything that changes what the network computes — and its verdict is cached next to the
TensorRT engines (:func:`gpen_video.engine.paths.engine_dir`) as
``torch-gate-<size>px-<precision>-<key digest>.json``, so later runs pay nothing.

A failing precision falls back along :data:`FALLBACK` — fp16 → bf16 → fp32 (bf16 keeps fp32's
exponent range, so it survives the activations that overflow fp16; fp32 is the reference
itself) — and one log line says what failed, by how much, and what is used instead. Each cache
entry records the PSNR, the maximum error and the precision fallen back to.

Why not "fp16 with the style path in fp32", the TensorRT backend's first remedy: in torch it
means a mixed-dtype forward through every modulated convolution of the network (casts at each
layer boundary), which this backend does not have, and nothing has measured on a GPU which of the
two (bf16, or fp16 with an fp32 style path) passes more often. The network already computes the
demodulation sums in fp32 at every precision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpen_video.engine.gate import GATE_PSNR_DB, GateReport, run_gate

if TYPE_CHECKING:
    import numpy as np

    from gpen_video.backends.base import Restorer

log = logging.getLogger("gpen_video.backends")

FALLBACK: dict[str, tuple[str, ...]] = {"fp16": ("fp16", "bf16", "fp32"),
                                        "bf16": ("bf16", "fp32"), "fp32": ("fp32",)}
KIND = "torch-precision-gate"


@dataclass(frozen=True)
class TorchGateKey:
    """What a torch precision verdict is valid for."""

    weights_sha256: str
    gpu: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"
    precision: str  # fp16 | bf16
    torch_version: str
    size: int  # crop size (the gate's crops are resized to it)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def filename(self) -> str:
        return f"torch-gate-{self.size}px-{self.precision}-{self.digest()[:16]}.json"


def weights_sha256(net: Any) -> str:
    """sha256 over the network's parameters and buffers (names, dtypes, shapes and bytes), in
    name order: the same weights give the same digest wherever they are loaded from."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass
class GateEntry:
    """One cached verdict (one precision on one key)."""

    key: TorchGateKey
    passed: bool
    psnr_db: float  # worst face
    max_abs_error_8bit: float
    fallback: str | None  # the precision used instead when this one failed
    report: dict  # the full GateReport

    def to_json(self) -> str:
        record = {"kind": KIND, "key": asdict(self.key), "passed": self.passed,
                  "psnr_db": _num(self.psnr_db),
                  "max_abs_error_8bit": _num(self.max_abs_error_8bit),
                  "fallback": self.fallback, "report": self.report}
        return json.dumps(record, indent=2, allow_nan=False)

    @classmethod
    def read(cls, path: Path) -> "GateEntry | None":
        """The entry at ``path``; None when missing, unreadable or not one of ours."""
        from gpen_video.engine.artifact import read_verified

        data = read_verified(path)  # a damaged verdict is named, removed, and gated again
        if data is None:
            return None
        try:
            record = json.loads(data)
            if record.get("kind") != KIND:
                return None
            return cls(TorchGateKey(**record["key"]), bool(record["passed"]),
                       float(record["psnr_db"]), float(record["max_abs_error_8bit"]),
                       record.get("fallback"), dict(record.get("report") or {}))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _num(value: float) -> float | str:
    return repr(float(value)) if math.isinf(value) or math.isnan(value) else round(value, 4)


@dataclass(frozen=True)
class GateChoice:
    """What :func:`choose_precision` decided."""

    requested: str
    precision: str  # the one to use
    entries: tuple[GateEntry, ...]  # the verdicts it rests on, in the order tried
    gated_now: tuple[str, ...]  # precisions whose gate ran in this call (the rest were cached)
    line: str | None  # the one log line, when it fell back


def choose_precision(requested: str, key_for: Callable[[str], TorchGateKey],
                     candidate: Callable[[str], "Restorer"], reference: Callable[[], "Restorer"],
                     faces: Callable[[], "np.ndarray"], folder: Path | None,
                     threshold_db: float = GATE_PSNR_DB) -> GateChoice:
    """The first precision of ``FALLBACK[requested]`` that passes the gate (fp32 always does:
    it is the reference), using cached verdicts in ``folder`` and writing new ones there.

    Args:
        requested: fp16 | bf16 | fp32.
        key_for: the cache key of a precision.
        candidate: a restorer at a precision (built, closed after use).
        reference: the FP32 restorer (built once, only when a gate runs).
        faces: the gate crops (read only when a gate runs).
        folder: where verdicts are cached; None: nowhere (the gate runs every time).

    Raises:
        UsageError: the gate's face crops are missing (from ``faces``).
    """
    entries: list[GateEntry] = []
    gated: list[str] = []
    ref = None
    chosen = "fp32"
    try:
        for precision in FALLBACK[requested]:
            if precision == "fp32":
                break
            key = key_for(precision)
            path = folder / key.filename() if folder is not None else None
            entry = GateEntry.read(path) if path is not None else None
            if entry is None or entry.key != key or (
                    entry.passed and entry.report.get("threshold_db", threshold_db) < threshold_db):
                if ref is None:
                    ref = reference()
                entry = _run_one(key, candidate(precision), ref, faces(), threshold_db)
                gated.append(precision)
            entries.append(entry)
            if entry.passed:
                chosen = precision
                break
    finally:
        if ref is not None:
            ref.close()
    dirty = set(gated)
    for entry in entries:
        if not entry.passed and entry.fallback != chosen:
            entry.fallback = chosen
            dirty.add(entry.key.precision)
    if folder is not None:
        for entry in entries:
            if entry.key.precision in dirty:
                _write(folder / entry.key.filename(), entry)
    line = (_fallback_line(requested, chosen, entries, folder, threshold_db)
            if chosen != requested else None)
    if line:
        log.warning(line)
    return GateChoice(requested, chosen, tuple(entries), tuple(gated), line)


def _run_one(key: TorchGateKey, candidate: "Restorer", reference: "Restorer",
             faces: "np.ndarray", threshold_db: float) -> GateEntry:
    try:
        report: GateReport = run_gate(candidate, reference, faces, threshold_db,
                                      extra={"backend": "torch", "precision": key.precision})
    finally:
        candidate.close()
    record = json.loads(report.to_json())
    return GateEntry(key, report.passed, report.psnr_db, report.max_abs_error_8bit, None, record)


def _write(path: Path, entry: GateEntry) -> None:
    from gpen_video.engine.artifact import write_artifact

    try:
        write_artifact(path, entry.to_json().encode())
    except OSError as exc:  # a read-only cache costs a gate per run, not the run
        log.warning("could not cache the torch quality gate's verdict in %s (%s); it will run "
                    "again next time", path, exc.strerror or exc)


def _fallback_line(requested: str, chosen: str, entries: list[GateEntry],
                   folder: Path | None, threshold_db: float) -> str:
    failed = "; ".join(f"{e.key.precision} worst {_db(e.psnr_db)}, max error "
                       f"{e.max_abs_error_8bit:.1f}/255" for e in entries if not e.passed)
    passed = next((e for e in entries if e.passed), None)
    why = f"passed at {_db(passed.psnr_db)}" if passed else "the FP32 reference itself"
    where = f"; verdicts cached in {folder}" if folder is not None else ""
    return (f"--precision {requested}: failed the quality gate vs FP32 on real face crops "
            f"({failed}; threshold {threshold_db:g} dB); using {chosen} ({why}){where}")


def _db(value: float) -> str:
    return "∞ dB" if math.isinf(value) and value > 0 else f"{value:.1f} dB"
