"""The onnxruntime backend (CPU provider) and the ONNX cache it uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpen_video.backends import backend_class, create_restorer
from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer, choose_providers
from gpen_video.backends.torch_backend import TorchRestorer
from gpen_video.engine.onnx_cache import cached_onnx, onnx_cache_key, weights_digest
from gpen_video.engine.profile import Profile
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.options import ModelOptions, RestoreOptions
from tests.engine_helpers import engine_folder, small_gpen, small_onnx

pytest.importorskip("onnxruntime")


def test_matches_the_torch_backend_on_cpu():
    net = small_gpen()
    path = small_onnx()
    ort_restorer = OnnxRuntimeRestorer(net, RestoreOptions(device="cpu", max_batch=2,
                                                           engine_dir=engine_folder()), threads=1)
    x = np.random.default_rng(1).random((5, 3, 64, 64), dtype=np.float32)
    with ort_restorer, TorchRestorer(net, RestoreOptions(device="cpu"), size=64) as torch_restorer:
        got = ort_restorer.restore(x)  # 5 faces through a max-batch-2 restorer: 2 + 2 + 1
        ref = torch_restorer.restore(x)
        got_torch = ort_restorer.restore(torch.from_numpy(x[:1]))
        described = ort_restorer.describe()
    assert ort_restorer.onnx_path == path  # the cached export, not a second one
    assert got.shape == x.shape and got.dtype == np.float32
    assert 0.0 <= got.min() and got.max() <= 1.0
    assert float(np.abs(got - ref).max()) <= 1e-3
    assert isinstance(got_torch, torch.Tensor)
    np.testing.assert_allclose(got_torch.numpy()[0], got[0], atol=1e-5)
    assert described == "onnxruntime (CPUExecutionProvider, fp32, 64px)"


def test_onnx_file_is_cached_by_content(monkeypatch):
    path = small_onnx()
    stamp = path.stat().st_mtime_ns
    import gpen_video.models.export as export

    def no_export(*args, **kwargs):
        raise AssertionError("the cached file should have been reused")

    monkeypatch.setattr(export, "export_onnx", no_export)
    assert cached_onnx(small_gpen(), engine_folder(), label="small") == path
    assert path.stat().st_mtime_ns == stamp
    # a model with other weights has another key, so it would be exported (here: refused)
    with pytest.raises(AssertionError, match="reused"):
        cached_onnx(small_gpen(seed=1), engine_folder(), label="small")


def test_onnx_key_covers_weights_config_and_opset():
    net = small_gpen()
    digest = weights_digest(net)
    assert digest == weights_digest(small_gpen())  # deterministic
    assert digest != weights_digest(small_gpen(seed=1))
    # the digest does not depend on the model's dtype (weights hashed as fp32)
    assert weights_digest(small_gpen().to(torch.float64)) == digest
    small_gpen().to(torch.float32)
    key = onnx_cache_key(digest, net.config, 17)
    assert key != onnx_cache_key(digest, net.config, 18)
    from dataclasses import replace

    assert key != onnx_cache_key(digest, replace(net.config, narrow=0.5), 17)
    assert key != onnx_cache_key(weights_digest(small_gpen(seed=1)), net.config, 17)


def test_provider_choice():
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cpu", cpu_only) == [("CPUExecutionProvider", {})]
    assert choose_providers("auto", cpu_only) == [("CPUExecutionProvider", {})]
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        choose_providers("cuda:0", cpu_only)
    with pytest.raises(UsageError, match="cuda:N"):
        choose_providers("gpu", cpu_only)
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = choose_providers("cuda:1", gpu, size=512, profile=Profile(1, 8, 32),
                              cache_dir=engine_folder())
    assert [name for name, _ in chosen] == gpu
    trt_options = chosen[0][1]
    assert trt_options["device_id"] == 1 and trt_options["trt_fp16_enable"] is False
    assert trt_options["trt_profile_max_shapes"] == "input:32x3x512x512"
    assert chosen[1][1] == {"device_id": 1}


def test_registry_and_options():
    assert backend_class("onnxruntime") is OnnxRuntimeRestorer
    r = create_restorer(ModelOptions(name="GPEN-BFR-256", random_weights=True),
                        RestoreOptions(backend="onnxruntime", device="cpu"))
    assert isinstance(r, OnnxRuntimeRestorer) and r.spec.size == 256 and not r.loaded
    with pytest.raises(UsageError, match="--backend tensorrt"):
        OnnxRuntimeRestorer(small_gpen(), RestoreOptions(precision="fp16"))


def test_unusable_engine_folder_is_one_line_naming_the_ways_out(tmp_path):
    """``--backend auto`` picks onnxruntime on a CPU, which caches an ONNX export: a folder that
    cannot be made says so and names --engine-dir and --backend torch (which needs no cache)."""
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer
    from gpen_video.errors import OutputError
    from gpen_video.options import RestoreOptions
    from tests.engine_helpers import small_gpen

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    restorer = OnnxRuntimeRestorer(small_gpen(), RestoreOptions(device="cpu",
                                                                engine_dir=blocker / "engines"))
    with pytest.raises(OutputError) as info:
        restorer.load()
    message = str(info.value)
    assert "\n" not in message and str(blocker / "engines") in message
    assert "--engine-dir" in message and "--backend torch" in message
