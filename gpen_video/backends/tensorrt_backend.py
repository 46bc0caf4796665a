"""``tensorrt``: GPEN as a TensorRT 10/11 engine on a CUDA GPU — FP16 (gated), BF16 or FP32.

On first use the engine for (weights, TensorRT version, GPU, precision, batch profile) is built
and checked by the quality gate — a one-time cost of minutes, announced in the log — then cached
in the engine folder (:mod:`gpen_video.engine.build`); later runs load it in a second.
``gpen-video engine build`` does the same ahead of time (a render farm builds once per GPU type).

Precision: ``auto`` is ``fp16``. An FP16 or BF16 engine is used only if it passed the gate
(worst-crop PSNR ≥ 40 dB against FP32 torch on real faces); otherwise loading fails with a
message suggesting ``--precision bf16|fp32``.

Input and output: the :class:`~gpen_video.backends.base.Restorer` conventions. A CUDA tensor
stays on the GPU (restored on the engine's compute stream, ordered with the caller's stream by
events); numpy or CPU tensors go through pinned buffers with uploads and downloads overlapping
the compute of neighbouring chunks (:class:`~gpen_video.engine.runtime.EngineRunner`). Batches
above the engine's max are split here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gpen_video.backends.base import InputSpec, ModelSource, Restorer, load_network, \
    model_crop_size, model_label
from gpen_video.engine.gate import GATE_PSNR_DB
from gpen_video.engine.profile import profile_for_restore
from gpen_video.engine.trt import import_tensorrt
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.options import PRECISIONS, ModelOptions, RestoreOptions, check_choice

if TYPE_CHECKING:
    from gpen_video.engine.build import GateRunners


def resolve_engine_precision(precision: str) -> str:
    """``auto`` → ``fp16``; ``fp32``/``fp16``/``bf16`` as they are.

    Raises:
        UsageError: anything else.
    """
    text = check_choice("--precision", (precision or "auto").lower(), PRECISIONS)
    return "fp16" if text == "auto" else text


@dataclass(frozen=True)
class SerializedEngine:
    """A plan already built (the quality gate's candidate): a :class:`TensorRTRestorer` runs
    it as it is, without looking in the engine cache."""

    data: bytes
    size: int  # crop size
    label: str = "engine"


class TensorRTRestorer(Restorer):
    """GPEN as a gated TensorRT engine.

    Args:
        model: which GPEN (name or file, weights source) — :class:`ModelOptions`, a weights path
            or registry name, or an ``nn.Module`` GPEN; or a :class:`SerializedEngine` to run
            as it is.
        restore: device (a CUDA device), precision, ``batch`` (→ the profile's opt),
            ``max_batch`` (→ the profile's max), ``engine_dir``.
        gate_images, threshold_db: the quality gate's face crops and threshold.

    Raises (at construction): BackendUnavailable — no TensorRT (one line: how to install it,
    and that ``--backend torch`` works), or no CUDA device. (From :meth:`load`): GateRejected,
    WeightsError, DownloadError, UsageError.
    """

    name = "tensorrt"
    native = "any"

    def __init__(self, model: ModelSource = None, restore: RestoreOptions | None = None, *,
                 gate_images: Path | None = None, threshold_db: float = GATE_PSNR_DB) -> None:
        import_tensorrt()  # the one clear line, before anything else
        from gpen_video.backends.torch_backend import resolve_device

        restore = restore or RestoreOptions()
        self._model = model if model is not None else ModelOptions()
        self._device = resolve_device(restore.device)
        if not self._device.startswith("cuda"):
            raise BackendUnavailable("the tensorrt backend runs on CUDA GPUs only; with "
                                     "--device cpu use --backend torch")
        self._precision = resolve_engine_precision(restore.precision)
        self._profile = profile_for_restore(restore.batch, restore.max_batch)
        self._engine_dir = restore.engine_dir
        self._gate_images = gate_images
        self._threshold_db = threshold_db
        built = isinstance(self._model, SerializedEngine)
        self._label = self._model.label if built else model_label(self._model)
        self._runner = None
        self.engine_path: Path | None = None
        size = self._model.size if built else model_crop_size(self._model)
        # batches are chunked by the runner itself (to overlap copies and compute)
        super().__init__(InputSpec(size=size or 0, max_batch=None))

    @classmethod
    def from_serialized(cls, data: bytes, size: int, device: str = "cuda:0",
                        label: str = "engine") -> "TensorRTRestorer":
        """A restorer around engine bytes already built (the quality gate's candidate)."""
        return cls(SerializedEngine(data, size, label),
                   RestoreOptions(backend="tensorrt", device=device))

    def describe(self) -> str:
        return f"tensorrt ({self._device}, {self._precision}, {self.spec.size}px, {self._label})"

    def _load_impl(self) -> None:
        from gpen_video.engine.runtime import EngineRunner

        if isinstance(self._model, SerializedEngine):
            data = self._model.data
        else:
            data = self._engine_bytes()
        runner = EngineRunner(data, self._device)
        if self.spec.size and runner.size != self.spec.size:
            raise UsageError(f"the engine is for {runner.size}px crops, not {self.spec.size}px")
        self.spec = InputSpec(size=runner.size, max_batch=None)
        self._runner = runner

    def _engine_bytes(self) -> bytes:
        from gpen_video.engine.build import EngineRequest, ensure_engine

        net = load_network(self._model)
        request = EngineRequest(precision=self._precision, profile=self._profile,
                                device=self._device, label=self._label,
                                engine_dir=self._engine_dir, gate_images=self._gate_images,
                                threshold_db=self._threshold_db)
        built = ensure_engine(net, request, gate_runners())
        self.engine_path = built.path
        return built.path.read_bytes()

    def _close_impl(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self._runner = None

    def _restore_impl(self, batch: Any) -> Any:
        import torch

        runner = self._runner
        if isinstance(batch, np.ndarray):
            return runner.run_host(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
        if batch.is_cuda:
            return runner.run_device(batch.contiguous())
        return runner.run_host(batch.contiguous())


def gate_runners() -> "GateRunners":
    """What the quality gate compares a plan with: the plan run by this backend against the same
    network in FP32 torch (:class:`~gpen_video.engine.build.GateRunners`)."""
    from gpen_video.backends.torch_backend import TorchRestorer
    from gpen_video.engine.build import GateRunners

    def candidate(data: bytes, size: int, device: str, label: str) -> TensorRTRestorer:
        return TensorRTRestorer.from_serialized(data, size=size, device=device, label=label)

    def reference(net: Any, device: str, size: int) -> TorchRestorer:
        return TorchRestorer(net, RestoreOptions(device=device, precision="fp32"), size=size)

    return GateRunners(candidate=candidate, reference=reference)
