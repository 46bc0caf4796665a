"""``--backend auto``: TensorRT → torch CUDA → onnxruntime CPU → torch CPU, and one log line
saying which and why."""

from __future__ import annotations

import logging

import pytest
import torch

from gpen_video.backends import auto_choice, create_restorer
from gpen_video.backends.torch_backend import TorchRestorer
from gpen_video.engine.trt import tensorrt_present
from gpen_video.options import ModelOptions, RestoreOptions

cpu_only = pytest.mark.skipif(torch.cuda.is_available() or tensorrt_present(),
                              reason="this machine has CUDA or TensorRT")


def _no_compiler(monkeypatch) -> None:
    import gpen_video.engine.compiled as compiled

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)


@cpu_only
def test_auto_on_a_cpu_with_a_compiler_picks_compiled_torch_and_says_why(caplog, monkeypatch):
    monkeypatch.setenv("CXX", "sh")  # any program found on PATH stands for a compiler here
    caplog.set_level(logging.INFO, logger="gpen_video.backends")
    restorer = create_restorer(ModelOptions(name="GPEN-BFR-256", random_weights=True),
                               RestoreOptions(backend="auto"))
    assert isinstance(restorer, TorchRestorer) and restorer._compile
    lines = [r.getMessage() for r in caplog.records if r.name == "gpen_video.backends"]
    assert lines == ["backend auto: torch on cpu, compiled with Inductor (the fastest CPU path; "
                     "TensorRT skipped: not installed, pip install 'gpen-video[tensorrt]'; CUDA "
                     "skipped: torch sees no CUDA GPU)"]
    # --compile off: the compiled path is not a candidate, onnxruntime is the fastest left
    pytest.importorskip("onnxruntime")
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer

    name, why = auto_choice("auto", compile="off")
    assert name == "onnxruntime" and why.endswith("compiled torch skipped: --compile off)")
    assert isinstance(create_restorer(ModelOptions(name="GPEN-BFR-256", random_weights=True),
                                      RestoreOptions(backend="auto", compile="off")),
                      OnnxRuntimeRestorer)


@cpu_only
def test_auto_on_a_cpu_without_a_compiler_logs_onnxruntime_and_why(caplog, monkeypatch):
    pytest.importorskip("onnxruntime")
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer

    _no_compiler(monkeypatch)
    caplog.set_level(logging.INFO, logger="gpen_video.backends")
    restorer = create_restorer(ModelOptions(name="GPEN-BFR-256", random_weights=True),
                               RestoreOptions(backend="auto"))
    assert isinstance(restorer, OnnxRuntimeRestorer)
    lines = [r.getMessage() for r in caplog.records if r.name == "gpen_video.backends"]
    assert lines == ["backend auto: onnxruntime on cpu (faster than torch on CPUs; TensorRT "
                     "skipped: not installed, pip install 'gpen-video[tensorrt]'; CUDA skipped: "
                     "torch sees no CUDA GPU; compiled torch skipped: no C++ compiler found "
                     "(install g++ or clang++, or set CXX))"]


@cpu_only
def test_auto_without_a_compiler_or_onnxruntime_falls_back_to_eager_torch(monkeypatch):
    import gpen_video.backends as backends

    _no_compiler(monkeypatch)
    real = backends._present
    monkeypatch.setattr(backends, "_present", lambda m: m != "onnxruntime" and real(m))
    name, why = auto_choice("auto")
    assert name == "torch" and why.startswith("backend auto: torch on cpu (TensorRT skipped")
    assert why.endswith("onnxruntime not installed: pip install 'gpen-video[onnx]' runs GPEN "
                        "about 1.5x faster on CPUs)")
    restorer = create_restorer(ModelOptions(name="GPEN-BFR-256", random_weights=True),
                               RestoreOptions(backend="auto"))
    assert isinstance(restorer, TorchRestorer) and restorer.device == "cpu"
    assert not restorer._compile


def test_explicit_cpu_device_skips_the_gpu_backends(monkeypatch):
    pytest.importorskip("onnxruntime")
    _no_compiler(monkeypatch)
    name, why = auto_choice("cpu")
    assert name == "onnxruntime" and why.startswith("backend auto: onnxruntime on cpu (faster "
                                                    "than torch on CPUs; --device cpu: TensorRT "
                                                    "and CUDA not tried")


@cpu_only
def test_explicit_cuda_without_a_gpu_says_so():
    name, why = auto_choice("cuda:1")
    assert name == "torch" and why.startswith("backend auto: torch on cuda:1 (")
    assert why.endswith("torch sees no CUDA GPU)")


def test_choice_follows_what_is_there():
    name, why = auto_choice("auto")
    if torch.cuda.is_available() and tensorrt_present():
        assert name == "tensorrt" and "on cuda" in why
    elif torch.cuda.is_available():
        assert name == "torch" and why.startswith("backend auto: torch on cuda, ")
        assert "(TensorRT skipped" in why
    else:
        from gpen_video.engine.compiled import compiler_missing

        if compiler_missing("cpu") is None:
            assert (name, why.split(" (")[0]) == ("torch", "backend auto: torch on cpu, "
                                                           "compiled with Inductor")
        else:
            assert name in ("onnxruntime", "torch")
            assert why.startswith(f"backend auto: {name} on cpu (")
