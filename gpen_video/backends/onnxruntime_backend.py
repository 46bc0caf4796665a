"""``onnxruntime``: GPEN's dynamic-batch ONNX export run by ONNX Runtime, in FP32.

The ONNX file is the one :mod:`gpen_video.models.export` writes, cached in the engine folder by a
hash of the weights, architecture and opset (:mod:`gpen_video.engine.onnx_cache`): the first run
exports it (seconds to a minute), later runs reuse it. An ``.onnx`` path may be given instead.

Execution providers: ``--device cpu`` → CPU; ``cuda[:N]`` → TensorRT's provider (when
onnxruntime-gpu has it; engines cached in ``<engine folder>/ort-trt``, FP32), then CUDA, then
CPU; ``auto`` → the CUDA providers when onnxruntime has them, else CPU. Precision is FP32 only:
gated FP16 is the ``tensorrt`` backend's job.

Model I/O as in the torch backend (:mod:`gpen_video.models.io`): ``x·2 − 1`` in,
``clip(y·0.5 + 0.5, 0, 1)`` out, float32.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gpen_video.backends.base import InputSpec, ModelSource, Restorer, load_network, \
    model_crop_size, model_label
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.models.io import model_to_unit, unit_to_model
from gpen_video.options import ModelOptions, RestoreOptions


def choose_providers(device: str, available: list[str], *, size: int | None = None,
                     profile: Any = None, cache_dir: Path | None = None
                     ) -> list[tuple[str, dict]]:
    """Execution providers (with options) for ``device`` given onnxruntime's ``available`` ones.

    Raises:
        BackendUnavailable: a CUDA device was asked for and onnxruntime has no CUDA provider.
        UsageError: not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    text = (device or "auto").strip().lower()
    if text == "cpu":
        return [("CPUExecutionProvider", {})]
    if text != "auto" and text != "cuda" and not text.startswith("cuda:"):
        raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    index = 0
    if text.startswith("cuda:"):
        try:
            index = int(text.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    has_cuda = "CUDAExecutionProvider" in available
    if not has_cuda:
        if text == "auto":
            return [("CPUExecutionProvider", {})]
        raise BackendUnavailable(f"--device {device}: this onnxruntime has no CUDA provider "
                                 "(pip install onnxruntime-gpu), or use --device cpu")
    chosen: list[tuple[str, dict]] = []
    if "TensorrtExecutionProvider" in available:
        trt_options: dict[str, Any] = {"device_id": index, "trt_fp16_enable": False}
        if cache_dir is not None:
            trt_options.update(trt_engine_cache_enable=True, trt_timing_cache_enable=True,
                               trt_engine_cache_path=str(Path(cache_dir) / "ort-trt"))
        if size and profile is not None:
            lo, opt, hi = (f"input:{n}x3x{size}x{size}" for n in
                           (profile.min, profile.opt, profile.max))
            trt_options.update(trt_profile_min_shapes=lo, trt_profile_opt_shapes=opt,
                               trt_profile_max_shapes=hi)
        chosen.append(("TensorrtExecutionProvider", trt_options))
    chosen.append(("CUDAExecutionProvider", {"device_id": index}))
    chosen.append(("CPUExecutionProvider", {}))
    return chosen


class OnnxRuntimeRestorer(Restorer):
    """GPEN through ONNX Runtime.

    Args:
        model: :class:`ModelOptions` (a registry name or weights file), a GPEN ``nn.Module``, a
            weights path or registry name, or the path of an exported ``.onnx`` file.
        restore: device, precision (``auto``/``fp32``), ``batch`` (the TensorRT provider's opt),
            ``max_batch`` (larger batches are split), ``engine_dir`` (where exported ONNX files
            are cached; default: the engine folder).
        threads: intra-op threads for the CPU provider (default: onnxruntime's choice).

    Raises (from :meth:`load`): WeightsError, DownloadError, BackendUnavailable, OutputError.
    """

    name = "onnxruntime"
    native = "numpy"

    def __init__(self, model: ModelSource = None, restore: RestoreOptions | None = None, *,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install "
                                     "'gpen-video[onnx]'; --backend torch works without it"
                                     ) from None
        restore = restore or RestoreOptions()
        precision = (restore.precision or "auto").lower()
        if precision not in ("auto", "fp32"):
            raise UsageError(f"--precision {precision} with onnxruntime: this backend runs "
                             "FP32 only; for fp16/bf16 use --backend tensorrt (quality-gated) "
                             "or --backend torch on a CUDA device")
        self._model = model if model is not None else ModelOptions()
        self._restore = restore
        self._threads = threads if threads is not None else restore.threads
        self._session = None
        self._providers: list[str] = []
        self.onnx_path: Path | None = None
        super().__init__(InputSpec(size=self._known_size() or 0, max_batch=restore.max_batch))

    @property
    def device(self) -> str:
        if not self._providers:
            return self._restore.device
        return "cpu" if self._providers[0] == "CPUExecutionProvider" else "cuda"

    def describe(self) -> str:
        provider = self._providers[0] if self._providers else "not loaded"
        return f"onnxruntime ({provider}, fp32, {self.spec.size}px)"

    def _known_size(self) -> int | None:
        return model_crop_size(self._model)

    def _onnx_file(self) -> Path:
        if isinstance(self._model, (str, Path)) and str(self._model).endswith(".onnx"):
            path = Path(self._model)
            if not path.is_file():
                raise UsageError(f"ONNX file {path} does not exist")
            return path
        from gpen_video.engine.onnx_cache import cached_onnx

        return cached_onnx(load_network(self._model), self._restore.engine_dir,
                           label=model_label(self._model), log=_notice)

    def _load_impl(self) -> None:
        import onnxruntime as ort

        from gpen_video.engine.profile import profile_for_restore

        path = self._onnx_file()
        size = _onnx_size(path)
        if self.spec.size and size != self.spec.size:
            raise UsageError(f"the ONNX model is {size}px but {self.spec.size}px was asked for")
        profile = profile_for_restore(self._restore.batch, self._restore.max_batch)
        providers = choose_providers(self._restore.device, ort.get_available_providers(),
                                     size=size, profile=profile, cache_dir=path.parent)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self._threads:
            options.intra_op_num_threads = int(self._threads)
        self._session = ort.InferenceSession(str(path), options,
                                             providers=[p for p, _ in providers],
                                             provider_options=[o for _, o in providers])
        self._providers = self._session.get_providers()
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        self.onnx_path = path
        max_batch = self.spec.max_batch
        if max_batch is None and self._providers[0] == "CPUExecutionProvider":
            # one face per run on the CPU: bigger batches are slower per face there
            # (benchmarks/RESULTS.md, "Numbers behind design choices")
            max_batch = 1
        self.spec = InputSpec(size=size, max_batch=max_batch)

    def _close_impl(self) -> None:
        self._session = None
        self._providers = []

    def _restore_impl(self, batch: np.ndarray) -> np.ndarray:
        (y,) = self._session.run([self._output], {self._input: unit_to_model(batch)})
        return model_to_unit(y)


def _notice(line: str) -> None:
    # WARNING so it shows by default: the first run pauses for the export (seconds to a minute)
    logging.getLogger("gpen_video.backends").warning(f"{line} (once; later runs reuse it)")


def _onnx_size(path: Path) -> int:
    """Crop size of an exported GPEN: from its metadata, else from the input's static dims."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "gpen_config":
            return int(json.loads(prop.value)["size"])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value)
