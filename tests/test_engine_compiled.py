"""The compiled engine (gpen_video.engine.compiled): built once with AOTInductor, within 1e-5 of
the plain module, loaded from the cache in a fraction of its build, damaged packages detected,
and no compiler → the eager network with one warning.

A build compiles C++ (about a minute on two cores even for the small network); the one fast test
builds once and checks everything it can on that engine. The full-size network is compiled by a
slow test (``GPEN_VIDEO_SLOW=1``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from gpen_video.backends.torch_backend import TorchRestorer, to_channels_last
from gpen_video.engine.compiled import _load, compiled_engine, compiler_missing, \
    describe_compiled
from gpen_video.engine.onnx_cache import weights_digest
from gpen_video.models.config import GpenConfig
from gpen_video.models.inference import inference_form
from gpen_video.models.load import build_gpen
from gpen_video.models.weights import REGISTRY
from gpen_video.options import RestoreOptions

needs_compiler = pytest.mark.skipif(compiler_missing("cpu") is not None,
                                    reason="no C++ compiler for Inductor")


@pytest.fixture(autouse=True)
def _inductor_cache(tmp_path: Path, monkeypatch) -> None:
    """Inductor's own cache (hundreds of MB of generated code) in the test's folder, not /tmp."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))


def _engine_matches_plain(net, folder: Path, batch: int = 1):
    form = to_channels_last(inference_form(net))
    engine = compiled_engine(form, weights_digest(net), "cpu", "fp32", 1, folder, label="t")
    size = net.config.size
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.inference_mode():
        want = net(x)
        got = engine(x.contiguous(memory_format=torch.channels_last))
    assert float((got - want).abs().max()) <= 1e-5
    return engine, form


@needs_compiler
def test_the_compiled_engine_is_built_once_matches_and_reloads_fast(tmp_path: Path) -> None:
    net = build_gpen(GpenConfig(32, channel_multiplier=1, narrow=0.0625), seed=2)
    built, form = _engine_matches_plain(net, tmp_path)
    assert built.built and built.path.is_file() and built.max_abs_diff <= 1e-5
    # the second load reads the package: a small fraction of the build
    again = compiled_engine(form, weights_digest(net), "cpu", "fp32", 1, tmp_path, label="t")
    assert not again.built and again.path == built.path
    assert again.load_seconds < 0.1 * built.build_seconds
    (line,) = describe_compiled(tmp_path)
    assert line.startswith(f"compiled {built.path.name}  32px fp32 batch ≤ 1 on ")
    # other weights, another engine (the key covers them)
    other = build_gpen(GpenConfig(32, channel_multiplier=1, narrow=0.0625), seed=3)
    from gpen_video.engine.compiled import compiled_key
    assert compiled_key(form, weights_digest(other), "cpu", "fp32", 1).filename("t") \
        != built.path.name
    # a damaged package is detected on load, reported and removed (so the next use rebuilds)
    data = built.path.read_bytes()
    built.path.write_bytes(data[: len(data) // 2])
    assert _load(built.path, "cpu") is None
    assert not built.path.exists() and not built.path.with_suffix(".json").exists()


@needs_compiler
@pytest.mark.slow
@pytest.mark.parametrize("name", ["GPEN-BFR-256", "GPEN-BFR-512"])
def test_the_compiled_full_size_networks_match_the_plain_module(tmp_path: Path, name: str
                                                                ) -> None:
    _engine_matches_plain(build_gpen(REGISTRY[name].gpen, seed=1), tmp_path)


def test_without_a_compiler_the_network_runs_eagerly_with_one_warning(
        tmp_path: Path, monkeypatch, caplog) -> None:
    import gpen_video.engine.compiled as compiled

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    assert "no C++ compiler" in compiler_missing("cpu")
    net = build_gpen(GpenConfig(32, channel_multiplier=1, narrow=0.0625), seed=2)
    caplog.set_level(logging.WARNING)
    restorer = TorchRestorer(net, RestoreOptions(device="cpu", compile="on", tactics="plain",
                                                 engine_dir=tmp_path))
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        plain = net(x * 2 - 1) * 0.5 + 0.5
    out = restorer.restore(x)
    assert restorer.engine is None and "eager" in restorer.describe()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0] and "eagerly" in warnings[0]
    assert float((out - plain.clamp(0, 1)).abs().max()) <= 1e-5
    assert not list(tmp_path.glob("*.pt2"))
