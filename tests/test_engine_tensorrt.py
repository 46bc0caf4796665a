"""The TensorRT path: what happens without TensorRT (tested here, on the CPU), and the real
engine build + quality gate + run (marked ``tensorrt`` and ``gpu``: skipped without them)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gpen_video.cli import main
from gpen_video.engine.gate import GateReport
from gpen_video.engine.trt import MISSING, import_tensorrt, tensorrt_present
from gpen_video.errors import EXIT_USAGE, BackendUnavailable
from gpen_video.options import ModelOptions, RestoreOptions
from tests.engine_helpers import small_gpen

no_tensorrt = pytest.mark.skipif(tensorrt_present(), reason="TensorRT is installed here")


@no_tensorrt
def test_missing_tensorrt_is_one_clear_line():
    from gpen_video.backends import backend_class
    from gpen_video.backends.tensorrt_backend import TensorRTRestorer

    with pytest.raises(BackendUnavailable) as info:
        import_tensorrt()
    message = str(info.value)
    assert message == MISSING and "\n" not in message
    assert "pip install 'gpen-video[tensorrt]'" in message and "--backend torch works" in message
    with pytest.raises(BackendUnavailable, match="--backend torch works"):
        backend_class("tensorrt")
    with pytest.raises(BackendUnavailable, match=r"gpen-video\[tensorrt\]"):
        TensorRTRestorer(ModelOptions(), RestoreOptions(backend="tensorrt"))


@no_tensorrt
def test_ensure_engine_stops_at_the_tensorrt_import(tmp_path):
    from gpen_video.backends.tensorrt_backend import gate_runners
    from gpen_video.engine.build import EngineRequest, build_serialized, ensure_engine
    from gpen_video.engine.profile import Profile

    with pytest.raises(BackendUnavailable, match="--backend torch"):
        ensure_engine(small_gpen(), EngineRequest(engine_dir=tmp_path), gate_runners())
    with pytest.raises(BackendUnavailable, match="--backend torch"):
        build_serialized(tmp_path / "x.onnx", "fp16", Profile(), 64)
    assert list(tmp_path.iterdir()) == []  # nothing exported or written before the check


@no_tensorrt
def test_engine_build_command_exits_2_with_the_line():
    proc = subprocess.run([sys.executable, "-m", "gpen_video", "engine", "build", "--backend",
                           "tensorrt", "--model", "GPEN-BFR-256", "--random-weights",
                           "--precision", "fp16", "--max-batch", "16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.strip() == f"gpen-video: error: {MISSING}"
    assert proc.stdout == ""


@no_tensorrt
def test_engine_build_without_tensorrt_builds_the_compiled_torch_engine_and_checks_first():
    """Without TensorRT ``engine build`` means the compiled torch engine; fp16 on the CPU is
    refused before any weights load."""
    from gpen_video.cli import main

    assert main(["engine", "build", "--model", "GPEN-BFR-256", "--random-weights", "--device",
                 "cpu", "--precision", "fp16"]) == EXIT_USAGE


def test_engine_command_usage_errors(capsys):
    # without TensorRT: the missing-TensorRT line; with it: --batch above --max-batch
    assert main(["engine", "build", "--precision", "fp16", "--batch", "64",
                 "--max-batch", "32"]) == EXIT_USAGE
    with pytest.raises(SystemExit) as stop:
        main(["engine", "build", "--precision", "int8"])
    assert stop.value.code == 2
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def test_engine_list(tmp_path, capsys):
    assert main(["engine", "list", "--engine-dir", str(tmp_path)]) == 0
    assert "no engines in" in capsys.readouterr().out
    report = GateReport(candidate="tensorrt", reference="torch fp32", threshold_db=40.0,
                        psnr_db=47.25, psnr_per_image_db=[47.25, 50.0], max_abs_error=0.01,
                        mean_abs_error=0.001, images=["a.png", "b.png"], size=512, passed=True,
                        extra={"precision": "fp16"})
    from gpen_video.engine.artifact import write_artifact

    write_artifact(tmp_path / "gpen-512px-fp16.plan", b"plan")  # as builds write plans
    report.write(tmp_path / "gpen-512px-fp16.json")
    report.passed = False
    report.psnr_db = 31.5
    report.extra = {"precision": "fp16"}
    report.write(tmp_path / "gpen-512px-fp16-b1-8-64.rejected.json")
    (tmp_path / "orphan.json").write_text("{}")  # a report without a plan is not listed
    assert main(["engine", "list", "--engine-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == [
        "ok       gpen-512px-fp16.plan  fp16, gate 47.2 dB (threshold 40 dB)",
        "rejected gpen-512px-fp16-b1-8-64.plan  fp16, gate 31.5 dB (threshold 40 dB)",
    ]


# --------------------------------------------------------------------------- with TensorRT
@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_builds_passes_the_gate_and_runs(tmp_path, testdata, precision):
    import torch

    from gpen_video.backends.tensorrt_backend import TensorRTRestorer, gate_runners
    from gpen_video.backends.torch_backend import TorchRestorer
    from gpen_video.engine.build import EngineRequest, ensure_engine
    from gpen_video.engine.profile import Profile

    net = small_gpen()
    request = EngineRequest(precision=precision, profile=Profile(1, 4, 8), label="small",
                            engine_dir=tmp_path)
    built = ensure_engine(net, request, gate_runners(), log=print)
    assert built.built and built.path.is_file() and built.report.passed
    report = GateReport.read(built.path.with_suffix(".json"))
    assert report.psnr_db >= 40.0 and report.extra["precision"] == precision
    assert any(p.name.startswith("timing-trt") and p.stat().st_size > 0
               for p in tmp_path.iterdir())
    again = ensure_engine(net, request, gate_runners(), log=print)  # cached: no second build
    assert not again.built and again.path == built.path

    restorer = TensorRTRestorer(net, RestoreOptions(device="cuda", precision=precision,
                                                    batch=4, max_batch=8, engine_dir=tmp_path))
    x = np.random.default_rng(0).random((19, 3, 64, 64), dtype=np.float32)  # 8 + 8 + 3
    with restorer, TorchRestorer(small_gpen(), RestoreOptions(device="cpu"), size=64) as reference:
        assert restorer.engine_path == built.path
        host = restorer.restore(x)  # pipelined through pinned buffers and three streams
        device = restorer.restore(torch.from_numpy(x).cuda())  # stays on the GPU
        ref = reference.restore(x)
    assert isinstance(device, torch.Tensor) and device.is_cuda
    np.testing.assert_allclose(device.cpu().numpy(), host, atol=1e-6)
    tolerance = 1e-3 if precision == "fp32" else 2e-2
    assert float(np.abs(host - ref).max()) <= tolerance


@pytest.mark.parametrize("version, accepted, message", [
    ("8.6.1", False, "too old"), ("10.0.1", True, ""), ("10.13.3.9", True, ""),
    ("11.4.0", True, ""), ("12.0.0", False, r"'tensorrt>=10,<12'"),
])
def test_tensorrt_version_gate(monkeypatch, version, accepted, message):
    """Only the version check is under test: a module object stands in for the wheel."""
    import types

    fake = types.ModuleType("tensorrt")
    fake.__version__ = version
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    if accepted:
        assert import_tensorrt() is fake
    else:
        with pytest.raises(BackendUnavailable, match=message):
            import_tensorrt()
