"""Engine cache keys, profile selection, the engine folder, file locks (CPU only)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpen_video.engine import paths
from gpen_video.engine.key import DeviceInfo, EngineKey, cuda_device_info, timing_cache_name
from gpen_video.engine.locking import lock_for
from gpen_video.engine.profile import Profile, select_profile
from gpen_video.errors import BackendUnavailable, OutputError, TransientError, UsageError

H100 = DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0))


def _key(**change) -> EngineKey:
    base = dict(onnx_sha256="ab" * 32, tensorrt_version="10.13.0.35", device=H100,
                precision="fp16", profile=Profile(1, 8, 32), size=512)
    base.update(change)
    return EngineKey(**base)


@pytest.mark.parametrize("batch, max_batch, expected", [
    (None, None, (1, 8, 32)),  # the documented default
    (8, None, (1, 8, 32)),
    (16, None, (1, 16, 32)),
    (48, None, (1, 48, 48)),  # a larger --batch raises the default max
    (None, 4, (1, 4, 4)),  # opt never above max
    (2, 64, (1, 2, 64)),
    (1, 1, (1, 1, 1)),
])
def test_profile_selection(batch, max_batch, expected):
    p = select_profile(batch, max_batch)
    assert (p.min, p.opt, p.max) == expected
    assert p.shapes(256)[2] == (expected[2], 3, 256, 256)


@pytest.mark.parametrize("batch, max_batch, message", [
    (16, 8, "larger than --max-batch"), (0, None, "--batch 0"), (None, 0, "--max-batch 0"),
    (None, 5000, "--max-batch 5000"),
])
def test_profile_errors(batch, max_batch, message):
    with pytest.raises(UsageError, match=message):
        select_profile(batch, max_batch)
    with pytest.raises(UsageError):
        Profile(4, 2, 8)


def test_engine_key_covers_every_field():
    base = _key()
    changes = {
        "onnx_sha256": "cd" * 32,
        "tensorrt_version": "10.14.1",
        "device": DeviceInfo("NVIDIA H200", (9, 0)),
        "precision": "bf16",
        "profile": Profile(1, 8, 64),
        "size": 256,
        "recipe": base.recipe + 1,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(EngineKey)}
    digests = {base.digest()}
    for name, value in changes.items():
        changed = _key(**{name: value})
        assert changed.digest() not in digests, name
        assert changed.filename("GPEN-BFR-512") != base.filename("GPEN-BFR-512"), name
        digests.add(changed.digest())
    # same compute capability, other GPU name → other key (tactics are timed per GPU model)
    assert _key(device=DeviceInfo("NVIDIA H100 PCIe", (9, 0))).digest() != base.digest()
    assert _key(device=DeviceInfo(H100.name, (8, 9))).digest() != base.digest()
    assert _key().digest() == base.digest()  # deterministic


def test_engine_key_filename_is_readable_and_safe():
    name = _key().filename("GPEN-BFR-512")
    assert name.startswith("GPEN-BFR-512-512px-fp16-b1-8-32-nvidia-h100-80gb-hbm3-sm90-"
                           "trt10.13.0.35-")
    assert name.endswith(".plan") and "/" not in name and " " not in name
    assert _key().filename("../weird name").startswith("weird-name-")
    with pytest.raises(UsageError, match="fp32, fp16, bf16"):
        _key(precision="int8")
    assert (timing_cache_name("10.13.0.35", H100)
            == "timing-trt10.13.0.35-nvidia-h100-80gb-hbm3-sm90.cache")


def test_cuda_device_info_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        info = cuda_device_info("cuda:0")
        assert info.name and info.compute_capability[0] >= 3
    else:
        with pytest.raises(BackendUnavailable, match="--backend torch"):
            cuda_device_info("cuda:0")


def test_default_engine_dir_order(tmp_path, monkeypatch):
    from gpen_video.environment import Environment

    checkout = tmp_path / "checkout" / "engines"
    checkout.mkdir(parents=True)
    monkeypatch.setattr(paths, "_CHECKOUT_ENGINES", checkout)
    variables = {"GPEN_VIDEO_ENGINES": str(tmp_path / "explicit"),
                 "GPEN_VIDEO_HOME": str(tmp_path / "home"),
                 "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert paths.default_engine_dir(Environment.read(variables)) == tmp_path / "explicit"
    del variables["GPEN_VIDEO_ENGINES"]
    # a checkout's engines/ is recognised by its README
    assert paths.default_engine_dir(Environment.read(variables)) == tmp_path / "home" / "engines"
    (checkout / "README.md").write_text("engines")
    assert paths.default_engine_dir(Environment.read(variables)) == checkout
    (checkout / "README.md").unlink()
    del variables["GPEN_VIDEO_HOME"]
    assert paths.default_engine_dir(Environment.read(variables)) == \
        tmp_path / "xdg" / "gpen-video" / "engines"
    # without an Environment (a library caller): this process's variables
    monkeypatch.setenv("GPEN_VIDEO_ENGINES", str(tmp_path / "from-process"))
    assert paths.default_engine_dir() == tmp_path / "from-process"
    made = paths.engine_dir(tmp_path / "new" / "folder")
    assert made.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="--engine-dir"):
        paths.engine_dir(tmp_path / "file" / "sub")


def test_lock_is_exclusive_and_times_out(tmp_path: Path):
    target = tmp_path / "engine.plan"
    with lock_for(target):
        with pytest.raises(TransientError, match="locked by another process"):
            with lock_for(target, timeout=0.2):
                pass
    with lock_for(target, timeout=0.2):  # released: free again
        pass
