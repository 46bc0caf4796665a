"""The one place that imports ``tensorrt``, with the one error line users see when it is missing.

Supported: TensorRT 10.x and 11.x. Engines are built as strongly typed networks from a graph
that carries its own precision (:mod:`gpen_video.engine.mixed`), the one way both majors share:
TensorRT 11 removed the FP16/BF16 builder flags ("weak typing") that 10.12 deprecated. The
runtime uses only the named-tensor API of TensorRT 10, unchanged in 11.

TensorRT's Python wheels are NVIDIA's (``pip install 'gpen-video[tensorrt]'`` asks for
``tensorrt>=10,<12``) and need a CUDA GPU with a matching driver. Without them the product runs
with ``--backend torch``.
"""

from __future__ import annotations

import importlib.util

from gpen_video.errors import BackendUnavailable

MISSING = ("TensorRT is not installed: pip install 'gpen-video[tensorrt]' (TensorRT 10 or 11, "
           "needs an NVIDIA GPU and driver); --backend torch works without it")
MIN_MAJOR = 10
MAX_MAJOR = 11  # the newest major whose API this code was written against


def tensorrt_present() -> bool:
    """Whether a ``tensorrt`` module can be found (without importing it)."""
    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        return False


def import_tensorrt():
    """The ``tensorrt`` module (version 10 or 11).

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
        raise BackendUnavailable(f"TensorRT {version} is newer than gpen-video knows (10 and "
                                 f"{MAX_MAJOR} are supported): pip install 'tensorrt>=10,<12' "
                                 "(the 'tensorrt' extra), or use --backend torch")
    return trt
