"""Restorers: one interface, thin backends, discovered lazily.

Public API:

* :class:`~gpen_video.backends.base.Restorer` — ``restore(batch)`` with ``batch`` an
  ``N×3×S×S`` float32 RGB array or tensor in ``[0, 1]`` (numpy in → numpy out, torch in → torch
  out); ``load()``/``close()``/context manager; :attr:`spec` (:class:`InputSpec`: crop size,
  dtype, range, max batch).
* :func:`create_restorer` — build one from :class:`~gpen_video.options.ModelOptions` and
  :class:`~gpen_video.options.RestoreOptions`. Every backend class is built the same way,
  ``Backend(model, restore, **overrides)`` (:mod:`gpen_video.backends.base`).
* :func:`available_backends` — the names that can run here.

Backends (name → module, imported only when used):

* ``identity`` — returns its input; for geometry tests and for timing everything but the model.
* ``torch`` — GPEN in PyTorch, CPU or CUDA, fp32/fp16/bf16.
* ``onnxruntime`` — the ONNX export run by ONNX Runtime, FP32 (CPU, or its CUDA providers).
* ``tensorrt`` — a gated FP16/BF16/FP32 TensorRT engine on a CUDA GPU.

A new backend is a ``gpen_video/backends/<name>_backend.py`` with a ``Restorer`` subclass taking
``(model, restore)``, an entry in :data:`BACKENDS` and its name in
:data:`gpen_video.options.BACKEND_NAMES` (the CLI's choices).

``auto`` picks, in order: ``tensorrt`` (CUDA and TensorRT present), then ``torch`` on CUDA,
compiled (Triton present); on the CPU, ``torch`` compiled when a C++ compiler is present (its
Inductor engine is the fastest CPU path: ``benchmarks/RESULTS.md``, "Network speed"), else
``onnxruntime`` when it is installed (faster than eager torch), else eager ``torch``; and logs which
and why (:func:`auto_choice`). When ``auto`` chooses torch it sets ``RestoreOptions.compile`` to
``on`` (unless ``off`` was asked for) and Triton or the compiler is there.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
from typing import TYPE_CHECKING

from gpen_video.backends.base import InputSpec, Restorer
from gpen_video.errors import BackendUnavailable
from gpen_video.options import BACKEND_NAMES, check_choice

if TYPE_CHECKING:
    from gpen_video.options import ModelOptions, RestoreOptions

# name -> (module, class, third-party modules it needs)
BACKENDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "identity": ("gpen_video.backends.identity", "IdentityRestorer", ()),
    "torch": ("gpen_video.backends.torch_backend", "TorchRestorer", ("torch",)),
    "onnxruntime": ("gpen_video.backends.onnxruntime_backend", "OnnxRuntimeRestorer",
                    ("onnxruntime", "onnx")),
    "tensorrt": ("gpen_video.backends.tensorrt_backend", "TensorRTRestorer", ("tensorrt",)),
}

__all__ = ["BACKENDS", "InputSpec", "Restorer", "available_backends", "backend_class",
           "create_restorer"]


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Backend names whose code and dependencies are installed (not whether a GPU is there)."""
    return [name for name, (module, _, deps) in BACKENDS.items()
            if _present(module) and all(_present(d) for d in deps)]


def backend_class(name: str) -> type[Restorer]:
    """The :class:`Restorer` subclass registered as ``name``.

    Raises:
        UsageError: unknown name (the message lists the known ones).
        BackendUnavailable: known but not installed here (lists the ones that are).
    """
    check_choice("--backend", name, tuple(BACKENDS))
    module_name, class_name, deps = BACKENDS[name]
    missing = [d for d in deps if not _present(d)]
    if missing or not _present(module_name):
        what = f"needs {', '.join(missing)}" if missing else "is not built into this version"
        extra = {"onnxruntime": " (pip install 'gpen-video[onnx]')",
                 "tensorrt": " (pip install 'gpen-video[tensorrt]'; --backend torch works "
                             "without it)"}.get(name, "")
        raise BackendUnavailable(
            f"backend {name!r} {what}{extra}; available here: {', '.join(available_backends())}"
        )
    return getattr(importlib.import_module(module_name), class_name)


def auto_choice(device: str, compile: str = "auto") -> tuple[str, str]:
    """``--backend auto``: (backend name, one log line saying which and why).

    Order: TensorRT (installed and a CUDA GPU) → torch on CUDA (compiled when Triton is there)
    → on the CPU, compiled torch (a C++ compiler is there and ``compile`` is not ``off``) →
    onnxruntime (installed: the ``onnx`` extra) → eager torch.
    """
    text = (device or "auto").strip().lower()
    if text == "cpu":
        return _cpu_choice("--device cpu: TensorRT and CUDA not tried", compile)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    has_trt = _present("tensorrt") and _present(BACKENDS["tensorrt"][0])
    trt_why = ("TensorRT skipped: not installed, pip install 'gpen-video[tensorrt]'"
               if not has_trt else "TensorRT skipped: it needs a CUDA GPU")
    if has_cuda and has_trt:
        return "tensorrt", "backend auto: tensorrt on cuda (TensorRT installed and a CUDA GPU)"
    if has_cuda:
        from gpen_video.engine.compiled import compiler_missing

        missing = compiler_missing("cuda") if compile != "off" else "--compile off"
        how = f"eager: {missing}" if missing else "compiled with Inductor"
        return "torch", f"backend auto: torch on cuda, {how} ({trt_why})"
    if text != "auto":  # an explicit CUDA device that is not there: torch will say so
        return "torch", f"backend auto: torch on {text} ({trt_why}; torch sees no CUDA GPU)"
    return _cpu_choice(f"{trt_why}; CUDA skipped: torch sees no CUDA GPU", compile)


def _cpu_choice(why: str, compile: str = "auto") -> tuple[str, str]:
    from gpen_video.engine.compiled import compiler_missing

    missing = compiler_missing("cpu") if compile != "off" else "--compile off"
    if missing is None:
        return "torch", (f"backend auto: torch on cpu, compiled with Inductor (the fastest CPU "
                         f"path; {why})")
    why = f"{why}; compiled torch skipped: {missing}"
    if all(_present(m) for m in BACKENDS["onnxruntime"][2]):
        return "onnxruntime", (f"backend auto: onnxruntime on cpu (faster than torch on CPUs; "
                               f"{why})")
    return "torch", (f"backend auto: torch on cpu ({why}; onnxruntime not installed: pip "
                     "install 'gpen-video[onnx]' runs GPEN about 1.5x faster on CPUs)")


def create_restorer(model: "ModelOptions", restore: "RestoreOptions") -> Restorer:
    """Build (not load) the restorer the options ask for: ``backend_class(name)(model, restore)``.

    Raises:
        UsageError, BackendUnavailable: see :func:`backend_class`; bad device/precision.
    """
    name = check_choice("--backend", restore.backend, BACKEND_NAMES)
    if name == "auto":
        name, why = auto_choice(restore.device, restore.compile)
        logging.getLogger("gpen_video.backends").info(why)
        if name == "torch" and restore.compile == "auto" and ", compiled with Inductor" in why:
            restore = dataclasses.replace(restore, compile="on")
    return backend_class(name)(model, restore)
