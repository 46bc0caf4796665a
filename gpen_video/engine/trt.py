"""The one place that imports ``tensorrt``, with the one error line users see when it is missing.

TensorRT's Python wheels come from NVIDIA (``pip install 'gpen-video[tensorrt]'`` pulls
``tensorrt>=10`` through pip's default index, which redirects to NVIDIA's) and need a CUDA GPU
with a matching driver. Without it the product runs with ``--backend torch``.
"""

from __future__ import annotations

import importlib.util

from gpen_video.errors import BackendUnavailable

MISSING = ("TensorRT is not installed: pip install 'gpen-video[tensorrt]' (TensorRT 10, needs an "
           "NVIDIA GPU and driver); --backend torch works without it")
MIN_MAJOR = 10


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
                                 "NVIDIA driver and CUDA libraries, or use --backend torch") from None
    version = getattr(trt, "__version__", "0")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_MAJOR:
        raise BackendUnavailable(f"TensorRT {version} is too old: gpen-video needs TensorRT "
                                 f"{MIN_MAJOR} or newer (pip install -U 'gpen-video[tensorrt]'); "
                                 "--backend torch works without it")
    return trt
