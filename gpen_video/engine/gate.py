"""The FP16 quality gate: a reduced-precision restorer must earn its place by measurement.

A candidate (a TensorRT FP16/BF16 engine, or any :class:`~gpen_video.backends.base.Restorer`)
and the reference (the same weights in FP32 torch) restore the same fixed set of real face crops;
the candidate is accepted only if, on **every** crop, its output is within
:data:`GATE_PSNR_DB` = **40 dB** PSNR of the reference's (peak 1.0 on the restorers' ``[0, 1]``
outputs; 40 dB is an RMS difference of 1 % of full scale, ≈ 2.6 levels in 8 bits). The worst
crop's PSNR decides; the maximum absolute error is recorded beside it (it is not a criterion:
one pixel may differ by several levels where the network is steep without anyone seeing it).

The gate set (:data:`GATE_IMAGES`) is real, varied input: one aligned, degraded crop from the
GFPGAN test set and five faces aligned by this product from frames of five LivePortrait clips
(three men, a woman, a child; studio, green screen, indoor), all resized to the model's size
(area interpolation down, cubic up). Only permissively licensed sources (Apache-2.0, MIT). They
ship with the package (``gpen_video/data/gate``: 512² JPEGs; sources and licences in the README
there) and are read from the folder given explicitly, else ``$GPEN_VIDEO_GATE_IMAGES``, else the
package; a folder may hold them as ``.png`` or ``.jpg``.

The gate knows nothing of TensorRT: it compares two restorers. :func:`strict_fp32` keeps
torch's CUDA reference in true FP32 (no TF32) while it runs.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gpen_video.environment import Environment
from gpen_video.errors import UsageError

if TYPE_CHECKING:
    from gpen_video.backends.base import Restorer

GATE_PSNR_DB = 40.0
GATE_IMAGES: tuple[str, ...] = (  # file names without their suffix (.png or .jpg)
    "gfpgan_adele",
    "liveportrait_d0",
    "liveportrait_d11",
    "liveportrait_d13",
    "liveportrait_d18",
    "liveportrait_s18",
)
PACKAGE_IMAGES = Path(__file__).resolve().parents[1] / "data" / "gate"  # shipped: package data
_SUFFIXES = ("", ".png", ".jpg")


class GateRejected(UsageError):
    """A reduced-precision restorer differs too much from FP32 (exit code 2: not retryable)."""


def default_gate_dir(env: Environment | None = None) -> Path:
    """``$GPEN_VIDEO_GATE_IMAGES``, else the crops shipped in the package (variables from
    ``env``, the CLI's; None reads this process's)."""
    env = env if env is not None else Environment.read()
    return env.gate_images if env.gate_images is not None else PACKAGE_IMAGES


def load_gate_faces(size: int, folder: Path | str | None = None,
                    names: tuple[str, ...] = GATE_IMAGES) -> np.ndarray:
    """The gate set as a restorer batch: ``N×3×S×S`` float32 RGB in ``[0, 1]``.

    Raises:
        UsageError: the folder or a file is missing or unreadable (the message says how to
            point the gate at the images).
    """
    import cv2

    folder = Path(folder) if folder is not None else default_gate_dir()
    batch = []
    for name in names:
        path = next((folder / (name + s) for s in _SUFFIXES if (folder / (name + s)).is_file()),
                    folder / name)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if bgr is None:
            raise UsageError(f"the quality gate's face crop {path} is missing or unreadable: "
                             "pass --gate-images DIR (or set GPEN_VIDEO_GATE_IMAGES) to a folder "
                             f"holding {', '.join(names)}")
        h, w = bgr.shape[:2]
        interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_CUBIC
        rgb = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB)
        batch.append(rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0))
    return np.ascontiguousarray(np.stack(batch))


@dataclass
class GateReport:
    """What the gate measured. Written as JSON next to the engine it judged."""

    candidate: str
    reference: str
    threshold_db: float
    psnr_db: float  # the worst crop's PSNR (peak 1.0); what decides
    psnr_per_image_db: list[float]
    max_abs_error: float  # over every pixel of every crop, in [0, 1] units
    mean_abs_error: float
    images: list[str]
    size: int
    passed: bool
    extra: dict = field(default_factory=dict)  # e.g. the FP32-pinning policy that was used

    @property
    def max_abs_error_8bit(self) -> float:
        return self.max_abs_error * 255.0

    def summary(self) -> str:
        verdict = "passed" if self.passed else "REJECTED"
        return (f"quality gate {verdict}: worst PSNR {_fmt_db(self.psnr_db)} vs FP32 "
                f"(threshold {self.threshold_db:g} dB), max abs error "
                f"{self.max_abs_error_8bit:.2f}/255 on {len(self.images)} face crops")

    def to_json(self) -> str:
        record = asdict(self)
        record["max_abs_error_8bit"] = self.max_abs_error_8bit
        for key in ("psnr_db", "max_abs_error", "mean_abs_error", "max_abs_error_8bit"):
            record[key] = _jsonable(record[key])
        record["psnr_per_image_db"] = [_jsonable(v) for v in record["psnr_per_image_db"]]
        return json.dumps(record, indent=2, allow_nan=False)

    def write(self, path: Path | str) -> Path:
        from gpen_video.engine.artifact import write_artifact

        return write_artifact(Path(path), self.to_json().encode())  # with its hash

    @classmethod
    def read(cls, path: Path | str) -> "GateReport":
        record = json.loads(Path(path).read_text())
        record.pop("max_abs_error_8bit", None)
        for key in ("psnr_db", "max_abs_error", "mean_abs_error"):
            record[key] = float(record[key])
        record["psnr_per_image_db"] = [float(v) for v in record["psnr_per_image_db"]]
        return cls(**record)


def _jsonable(value: float) -> float | str:
    """JSON has no infinities: write them as "inf"/"-inf" (``float()`` reads them back)."""
    return repr(float(value)) if math.isinf(value) else float(value)


def _fmt_db(value: float) -> str:
    return "∞ dB (identical)" if math.isinf(value) else f"{value:.1f} dB"


def psnr_db(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR of two float arrays (``inf`` when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def compare(candidate_out: np.ndarray, reference_out: np.ndarray,
            threshold_db: float = GATE_PSNR_DB, *, candidate: str = "candidate",
            reference: str = "fp32 reference", images: tuple[str, ...] = GATE_IMAGES,
            extra: dict | None = None) -> GateReport:
    """Judge two restorer outputs (``N×3×S×S`` in ``[0, 1]``, one image per entry of ``images``)."""
    if candidate_out.shape != reference_out.shape:
        raise ValueError(f"outputs differ in shape: {candidate_out.shape} vs "
                         f"{reference_out.shape}")
    if not np.all(np.isfinite(candidate_out)):
        per = [-math.inf] * candidate_out.shape[0]  # NaN/inf from overflow: the worst outcome
        worst, max_err, mean_err = -math.inf, math.inf, math.inf
    else:
        per = [psnr_db(c, r) for c, r in zip(candidate_out, reference_out)]
        worst = min(per)
        diff = np.abs(candidate_out.astype(np.float64) - reference_out.astype(np.float64))
        max_err, mean_err = float(diff.max()), float(diff.mean())
    return GateReport(candidate=candidate, reference=reference, threshold_db=float(threshold_db),
                      psnr_db=worst, psnr_per_image_db=per, max_abs_error=max_err,
                      mean_abs_error=mean_err, images=list(images)[:len(per)],
                      size=int(candidate_out.shape[-1]), passed=bool(worst >= threshold_db),
                      extra=dict(extra or {}))


def run_gate(candidate: "Restorer", reference: "Restorer", faces: np.ndarray,
             threshold_db: float = GATE_PSNR_DB, *, images: tuple[str, ...] = GATE_IMAGES,
             extra: dict | None = None) -> GateReport:
    """Restore ``faces`` with both restorers and :func:`compare` them.

    The reference runs under :func:`strict_fp32`. Both restorers are loaded if needed and left
    loaded.
    """
    with strict_fp32():
        ref = np.asarray(reference.restore(faces), dtype=np.float32)
    out = np.asarray(candidate.restore(faces), dtype=np.float32)
    return compare(out, ref, threshold_db, candidate=candidate.describe(),
                   reference=reference.describe(), images=images, extra=extra)


def require_pass(report: GateReport, precision: str) -> None:
    """Raise :class:`GateRejected` (one line, what to do next) unless ``report.passed``."""
    if report.passed:
        return
    others = " or ".join(f"--precision {p}" for p in ("bf16", "fp32") if p != precision)
    raise GateRejected(
        f"{precision} rejected by the quality gate: worst PSNR {_fmt_db(report.psnr_db)} vs FP32 "
        f"on real face crops is below {report.threshold_db:g} dB (max abs error "
        f"{report.max_abs_error_8bit:.1f}/255); use {others}")


@contextlib.contextmanager
def strict_fp32():
    """Turn TF32 off in torch (CUDA matmuls and cuDNN convolutions) for the block, then restore.

    On the CPU this changes nothing. TF32 keeps 10 mantissa bits — an FP32 reference computed
    with it would itself be a reduced-precision result.
    """
    import torch

    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
