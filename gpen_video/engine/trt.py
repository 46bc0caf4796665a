"""The one place that imports ``tensorrt``, with the one error line users see when it is missing.

Supported: TensorRT 10.x. The builder marks FP32 layers with per-layer precision constraints and
the FP16/BF16 builder flags ("weak typing"), deprecated in 10.12 and removed in TensorRT 11, which
requires strongly typed networks (precision written into the ONNX graph as casts); TensorRT 11 is
refused with a clear message until that path exists.

TensorRT's Python wheels are NVIDIA's (``pip install 'gpen-video[tensorrt]'`` asks for
``tensorrt>=10,<11``) and need a CUDA GPU with a matching driver. Without them the product runs
with ``--backend torch``.
"""

from __future__ import annotations

import importlib.util

from gpen_video.errors import BackendUnavailable

MISSING = ("TensorRT is not installed: pip install 'gpen-video[tensorrt]' (TensorRT 10, needs an "
           "NVIDIA GPU and driver); --backend torch works without it")
MIN_MAJOR = 10
MAX_MAJOR = 10  # TensorRT 11 removed the weak-typing precision flags the builder uses


def tensorrt_present() -> bool:
    """Whether a ``tensorrt`` module can be found (without importing it)."""
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        return False


def import_tensorrt():
    """The ``tensorrt`` module (version 10 or newer).

    Raises:
        BackendUnavailable: not installed, fails to load (no driver/CUDA libraries), or too old;
            one line, saying how to install it and that ``--backend torch`` works.
    """
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(MISSING) from None
    except OSError as exc:  # the wheel is there but its CUDA libraries are not loadable
        raise BackendUnavailable(f"TensorRT is installed but does not load ({exc}); check the "
                                 "NVIDIA driver and CUDA libraries, or use --backend torch"
                                 ) from None
    version = getattr(trt, "__version__", "0")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_MAJOR:
        raise BackendUnavailable(f"TensorRT {version} is too old: gpen-video needs TensorRT "
                                 f"{MIN_MAJOR} or newer (pip install -U 'gpen-video[tensorrt]'); "
                                 "--backend torch works without it")
    if major > MAX_MAJOR:
        raise BackendUnavailable(f"TensorRT {version} is not supported yet: gpen-video builds "
                                 "engines with TensorRT 10's precision flags, which TensorRT 11 "
                                 "removed; pip install 'tensorrt>=10,<11' (the 'tensorrt' "
                                 "extra), or use --backend torch")
    return trt
