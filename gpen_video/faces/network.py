"""Where the detector's network runs: torch (its own device), or onnxruntime on the CPU.

Both take the same input — an ``N×3×H×W`` float32 BGR batch minus the means, any size — and
return facexlib RetinaFace's three outputs as torch tensors on the batch's device: box offsets
``N×P×4``, class scores ``N×P×2`` (softmaxed) and landmark offsets ``N×P×10``.

``DetectOptions.runtime``:

``auto`` (default)
    onnxruntime on the CPU when it is installed (the ``onnx`` extra), torch otherwise and on
    CUDA. RetinaFace's depthwise convolutions run about twice as fast in onnxruntime as in
    PyTorch on a CPU (``benchmarks/RESULTS.md``, "Detector network: torch vs onnxruntime").
``torch`` / ``onnxruntime``
    Forced; ``onnxruntime`` only on the CPU.

The ONNX graph is exported from the loaded network in memory (TorchScript exporter, batch and
image size dynamic), a fraction of a second per weights file and process (cached). Outputs agree
with torch's to about 1e-5 (float32 summation order); results are not bit-identical across
runtimes.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import Any

from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.options import DETECT_RUNTIMES, check_choice

_EXPORTS: dict[Any, bytes] = {}  # cache key → ONNX bytes
_LOCK = threading.Lock()


class TorchNetwork:
    """The facexlib module itself, on its device."""

    name = "torch"

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, batch: Any) -> tuple[Any, Any, Any]:
        return self.model(batch)


class OnnxNetwork:
    """The module exported to ONNX and run by onnxruntime on the CPU (``threads`` intra-op
    threads, no spinning: the pipeline's other stages share the cores)."""

    name = "onnxruntime"

    def __init__(self, model: Any, threads: int, cache_key: Any = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(_onnx_bytes(model, cache_key), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, batch: Any) -> tuple[Any, Any, Any]:
        import torch

        x = batch.detach().contiguous().numpy()
        loc, conf, landm = self.session.run(None, {"image": x})
        return torch.from_numpy(loc), torch.from_numpy(conf), torch.from_numpy(landm)


def choose_network(model: Any, device: Any, runtime: str, cache_key: Any = None) -> Any:
    """The runner for ``model`` on ``device`` (a ``torch.device``) under ``runtime``.

    Raises:
        UsageError: an unknown runtime, or onnxruntime asked for on CUDA.
        BackendUnavailable: onnxruntime asked for and not installed.
    """
    import torch

    check_choice("detector runtime", runtime, DETECT_RUNTIMES)
    if runtime == "torch" or (runtime == "auto" and device.type != "cpu"):
        return TorchNetwork(model)
    if device.type != "cpu":
        raise UsageError(f"detector runtime onnxruntime runs on the CPU, not {device}")
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        if runtime == "auto":
            return TorchNetwork(model)
        raise BackendUnavailable("the detector runtime onnxruntime is not installed: "
                                 "pip install 'gpen-video[onnx]'") from None
    return OnnxNetwork(model, torch.get_num_threads(), cache_key)


def _onnx_bytes(model: Any, cache_key: Any) -> bytes:
    import torch

    with _LOCK:
        if cache_key is not None and cache_key in _EXPORTS:
            return _EXPORTS[cache_key]
        buffer = io.BytesIO()
        dynamic = {0: "n", 1: "priors"}
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (torch.zeros(1, 3, 160, 160),), buffer, dynamo=False,
                              opset_version=17, input_names=["image"],
                              output_names=["loc", "conf", "landm"],
                              dynamic_axes={"image": {0: "n", 2: "height", 3: "width"},
                                            "loc": dynamic, "conf": dynamic, "landm": dynamic})
        data = buffer.getvalue()
        if cache_key is not None:
            _EXPORTS[cache_key] = data
        return data
