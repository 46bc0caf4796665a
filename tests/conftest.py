"""Shared fixtures and marker handling.

Tests run on the CPU and offline by default. Markers opt in:
``slow`` (run with GPEN_VIDEO_SLOW=1), ``gpu`` (needs CUDA), ``tensorrt``, ``network``
(GPEN_VIDEO_NETWORK=1). Skipped tests say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture(scope="session", autouse=True)
def _engine_cache(tmp_path_factory) -> None:
    """Exported ONNX files and engines of a test run go to a temporary folder, not the
    checkout's ``engines/`` or the user's cache (unless GPEN_VIDEO_ENGINES is set)."""
    if not os.environ.get("GPEN_VIDEO_ENGINES"):
        os.environ["GPEN_VIDEO_ENGINES"] = str(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="session")
def testdata() -> Path:
    """``../shared/testdata`` (real images, clips, detector weights, GPEN reference tensors)."""
    if not TESTDATA.is_dir():
        pytest.skip(f"{TESTDATA} is missing: the shared test data sits beside the repository")
    return TESTDATA


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = os.environ.get("GPEN_VIDEO_SLOW") == "1" or "slow" in (config.option.markexpr or "")
    run_network = os.environ.get("GPEN_VIDEO_NETWORK") == "1"
    gates = {
        "slow": (run_slow, "slow test: set GPEN_VIDEO_SLOW=1 to run it"),
        "network": (run_network, "needs the internet: set GPEN_VIDEO_NETWORK=1 to run it"),
    }
    lazy_gates = {"gpu": (_cuda_available, "needs a CUDA GPU (torch.cuda.is_available() is False)"),
                  "tensorrt": (_tensorrt_available, "needs TensorRT (the 'tensorrt' extra)")}
    cache: dict[str, bool] = {}
    for item in items:
        for name, (enabled, reason) in gates.items():
            if name in item.keywords and not enabled:
                item.add_marker(pytest.mark.skip(reason=reason))
        for name, (probe, reason) in lazy_gates.items():
            if name in item.keywords:
                if name not in cache:
                    cache[name] = probe()
                if not cache[name]:
                    item.add_marker(pytest.mark.skip(reason=reason))
