"""Export GPEN to ONNX with a dynamic batch axis, check it, and compare it with torch.

The ONNX graph has one input ``input`` (N×3×S×S float32, RGB, [-1, 1]) and one output
``output`` (N×3×S×S float32, RGB, raw: not clamped), N free. The file's metadata
(``metadata_props``) records the architecture and this convention, so backends need not guess.

The export uses torch's TorchScript-based exporter (``dynamo=False``): it needs nothing beyond
torch and onnx, and the network has no data-dependent control flow. The modulated convolutions
are in the unfused form (:mod:`gpen_video.models.gpen`), so no operator depends on the batch size.
Constant subgraphs the exporter leaves (the FIR kernels' ``Expand``) are folded into initializers
(:mod:`gpen_video.models.onnx_fold`): every convolution weight is a constant.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from gpen_video.errors import BackendUnavailable, OutputError
from gpen_video.models.gpen import GPEN
from gpen_video.models.onnx_fold import fold_constants

INPUT_NAME = "input"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 17


def export_onnx(model: GPEN, path: Path | str, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` (temp file beside it, renamed when complete).

    The model is exported in fp32 on the CPU (a copy; ``model`` itself is not changed), with the
    batch axis dynamic, then validated with ``onnx.checker`` (full check, with shape inference).

    Raises:
        BackendUnavailable: the ``onnx`` package is not installed.
        OutputError: the folder does not exist or cannot be written.
        ValueError: ``opset`` < 17.
    """
    if opset < 17:
        raise ValueError(f"opset {opset}: GPEN export needs opset 17 or newer")
    onnx = _import_onnx()
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    cpu_model = _cpu_fp32_copy(model)
    size = cpu_model.config.size
    example = torch.zeros(1, 3, size, size)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                cpu_model,
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        fold_constants(proto)  # every convolution weight an initializer (see onnx_fold)
        proto.producer_name = "gpen-video"
        meta = {
            "gpen_config": json.dumps(asdict(cpu_model.config)),
            "input": "N×3×S×S float32, RGB, (pixel/255 - 0.5)/0.5 in [-1, 1]",
            "output": "N×3×S×S float32, RGB, raw (x*0.5+0.5, clip, round to get pixels)",
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it private; give it the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def compare_with_onnxruntime(
    model: GPEN,
    onnx_path: Path | str,
    batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
) -> dict[int, float]:
    """Max abs difference between torch (fp32, CPU) and onnxruntime (CPU) per batch size.

    Inputs are uniform random in [-1, 1] from ``seed``; each batch size is a separate run, so
    the dynamic batch axis is exercised.

    Raises:
        BackendUnavailable: ``onnxruntime`` is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install 'gpen-video[onnx]'")
    cpu_model = _cpu_fp32_copy(model)
    size = cpu_model.config.size
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    errors: dict[int, float] = {}
    for batch in batches:
        x = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
        with torch.inference_mode():
            expected = cpu_model(x)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        errors[batch] = float((torch.from_numpy(got) - expected).abs().max())
    return errors


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cpu_fp32_copy(model: GPEN) -> GPEN:
    params = next(model.parameters())
    if params.device.type == "cpu" and params.dtype == torch.float32:
        return model.eval()
    import copy

    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise BackendUnavailable("the onnx package is not installed: pip install "
                                 "'gpen-video[onnx]'") from None
    return onnx
