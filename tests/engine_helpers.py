"""Small random-weight GPENs (the one test configuration, :func:`small_gpen`), their ONNX
export, and emulated low-precision copies, shared by every test that needs a network (built once
per test process)."""

from __future__ import annotations

import atexit
import copy
import functools
import os
import shutil
import tempfile
from pathlib import Path

import torch

@functools.lru_cache(maxsize=None)
def small_gpen(seed: int = 0, size: int = 64, narrow: float = 0.25):
    """GPEN of the real architecture, reduced (64 px, channel multiplier 1, narrow 0.25 unless
    asked otherwise), random weights (CPU, fp32, eval): plumbing and speed only. Shared: a test
    that changes it must copy it first."""
    from gpen_video.models.config import GpenConfig
    from gpen_video.models.load import build_gpen

    return build_gpen(GpenConfig(size, channel_multiplier=1, narrow=narrow), seed=seed)


@functools.lru_cache(maxsize=None)
def engine_folder() -> Path:
    """A scratch engine folder for this test process (removed at exit), inside the session's
    engine folder when there is one (tests/conftest.py: under pytest's temporary folder, which
    pytest removes even when this process is killed before its exit handlers run)."""
    folder = Path(tempfile.mkdtemp(prefix="gpen-engines-",
                                   dir=os.environ.get("GPEN_VIDEO_ENGINES") or None))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=None)
def small_onnx() -> Path:
    """The cached ONNX export of :func:`small_gpen` (exported once per process)."""
    from gpen_video.engine.onnx_cache import cached_onnx

    return cached_onnx(small_gpen(), engine_folder(), label="small")


def emulated_precision(net: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``net`` that computes as if stored and run in ``dtype``: weights rounded to it,
    and the output of every conv, linear, activation and resampling layer rounded to it (FP32
    accumulation inside each layer, like tensor cores). A real numerical degradation, not a
    stand-in: float16 stays close to FP32, float8 does not."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for p in out.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    kinds = ("EqualConv2d", "EqualLinear", "ModulatedConv2d", "FusedLeakyReLU", "Blur",
             "Upsample")
    for module in out.modules():
        if type(module).__name__ in kinds:
            module.register_forward_hook(lambda _m, _i, y: y.to(dtype).to(torch.float32))
    return out
