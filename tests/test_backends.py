"""The Restorer interface, its registry, and the identity and torch backends (CPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gpen_video.backends import available_backends, backend_class, create_restorer
from gpen_video.backends.base import InputSpec, Restorer
from gpen_video.backends.identity import IdentityRestorer
from gpen_video.errors import BackendUnavailable, UsageError
from gpen_video.options import ModelOptions, RestoreOptions
from tests.engine_helpers import small_gpen


def test_identity_numpy_and_torch_in_kind_out():
    r = IdentityRestorer(restore=RestoreOptions(batch=2), size=32)
    x = np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32)
    y = r.restore(x)
    assert isinstance(y, np.ndarray) and np.array_equal(x, y) and y is not x
    t = torch.from_numpy(x)
    yt = r.restore(t)
    assert isinstance(yt, torch.Tensor) and torch.equal(yt, t)


@pytest.mark.parametrize(
    "batch, message",
    [
        (np.zeros((2, 3, 16, 16), np.float32), "N×3×32×32"),
        (np.zeros((2, 32, 32, 3), np.float32), "N×3×32×32"),
        (np.zeros((0, 3, 32, 32), np.float32), "empty"),
        (np.zeros((1, 3, 32, 32), np.uint8), "float32"),
        (np.full((1, 3, 32, 32), 255.0, np.float32), "divide 8-bit"),
        (np.full((1, 3, 32, 32), np.nan, np.float32), "values in"),
        (torch.full((1, 3, 32, 32), 255.0), "divide 8-bit"),  # torch batches: one aminmax
        (torch.full((1, 3, 32, 32), float("nan")), "values in"),
        (torch.cat([torch.zeros(1, 3, 32, 32), torch.full((1, 3, 32, 32), -0.5)]), "values in"),
    ],
)
def test_input_checks(batch, message):
    with pytest.raises(UsageError, match=message):
        IdentityRestorer(size=32).restore(batch)


class _CountingRestorer(Restorer):
    """A backend written only with the ``_impl`` parts, to check the base class's lifecycle."""

    name = "counting"
    native = "numpy"

    def __init__(self):
        super().__init__(InputSpec(size=8, max_batch=3))
        self.calls: list[int] = []
        self.loads = self.closes = 0

    def _load_impl(self):
        self.loads += 1

    def _close_impl(self):
        self.closes += 1

    def _restore_impl(self, batch):
        self.calls.append(batch.shape[0])
        return 1.0 - batch


def test_base_class_owns_lifecycle_chunking_and_conversion():
    r = _CountingRestorer()
    with r:
        out = r.restore(torch.zeros(7, 3, 8, 8))  # torch in, numpy backend, torch out
        r.load()
    assert isinstance(out, torch.Tensor) and float(out.min()) == 1.0
    assert r.calls == [3, 3, 1] and r.loads == 1 and r.closes == 1
    r.restore(np.zeros((1, 3, 8, 8), np.float32))  # lazy load
    assert r.loads == 2


def test_registry_names_and_errors():
    names = available_backends()
    assert "identity" in names and "torch" in names
    with pytest.raises(UsageError, match="identity, torch"):
        backend_class("nope")
    if "tensorrt" not in names:
        with pytest.raises(BackendUnavailable, match="available here: identity, torch"):
            backend_class("tensorrt")
    r = create_restorer(ModelOptions(name="GPEN-BFR-256"), RestoreOptions(backend="identity"))
    assert isinstance(r, IdentityRestorer) and r.spec.size == 256


def test_torch_device_and_precision_errors():
    from gpen_video.backends.torch_backend import resolve_device, resolve_precision

    assert resolve_device("cpu") == "cpu"
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(UsageError, match="fp32"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(UsageError, match="cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="--device cpu"):
            resolve_device("cuda:0")


def test_torch_backend_runs_gpen_and_matches_the_network():
    net = copy.deepcopy(small_gpen())  # the restorer converts it in place
    TorchRestorer = backend_class("torch")
    r = TorchRestorer(net, RestoreOptions(device="cpu", batch=2), size=64)
    x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    with r:
        y = r.restore(x)
        y_again = r.restore(x)
        y1 = r.restore(x[1:2])
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert np.array_equal(y, y_again)  # deterministic
    with torch.inference_mode():
        ref = (net(torch.from_numpy(x) * 2 - 1) * 0.5 + 0.5).clamp(0, 1).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    np.testing.assert_allclose(y1[0], y[1], atol=1e-5)


def test_channels_last_preparation_works_on_gpen_and_changes_nothing():
    """The CUDA path stores GPEN channels_last. ``Module.to(memory_format=…)`` raises on GPEN's
    5-D modulated weights; :func:`to_channels_last` converts only the 4-D tensors, and the
    network computes the same (checked on the CPU, where the conversion is the same code)."""
    import copy

    import torch

    from gpen_video.backends.torch_backend import to_channels_last
    from tests.engine_helpers import small_gpen

    net = small_gpen()
    with pytest.raises(RuntimeError, match="rank 4"):
        copy.deepcopy(net).to(memory_format=torch.channels_last)
    converted = to_channels_last(copy.deepcopy(net))
    four_d = [p for p in converted.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        expected = net(x)
        got = converted(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_one_constructor_contract_for_every_backend():
    """Every installed backend is built as ``Backend(model, restore)`` and knows the crop size of
    a registry model before loading anything."""
    from gpen_video.backends import BACKENDS

    model = ModelOptions(name="GPEN-BFR-256", random_weights=True)
    restore = RestoreOptions(device="cpu", precision="fp32", batch=2)
    for name in available_backends():
        if name == "tensorrt":  # needs a CUDA GPU at construction
            continue
        restorer = backend_class(name)(model, restore)
        assert restorer.spec.size == 256 and not restorer.loaded, name
    assert set(available_backends()) <= set(BACKENDS)


def test_fixed_choices_are_one_tuple_for_the_cli_and_the_library():
    from gpen_video.backends import BACKENDS
    from gpen_video.cli import build_parser
    from gpen_video.options import BACKEND_NAMES, DETECTOR_CHOICES, DETECTORS, PRECISIONS

    assert set(BACKEND_NAMES) == {"auto", *BACKENDS}
    for command in ("run", "bench"):
        parser, _ = build_parser(command)
        choices = {a.dest: a.choices for a in parser._actions if a.choices}
        assert choices["backend"] is BACKEND_NAMES
        assert choices["precision"] is PRECISIONS
        assert choices["detector"] is DETECTOR_CHOICES  # auto: from the weights file, everywhere
    parser, _ = build_parser("measure")
    assert {a.dest: a.choices for a in parser._actions if a.choices}["detector"] \
        is DETECTOR_CHOICES
    assert set(DETECTOR_CHOICES) == {"auto", *DETECTORS}
    with pytest.raises(UsageError, match="--precision 'fp8': choose one of auto, fp32, fp16, bf16"):
        create_restorer(ModelOptions(name="GPEN-BFR-256"),
                        RestoreOptions(backend="torch", device="cpu", precision="fp8"))
    with pytest.raises(UsageError, match="--backend 'tflite': choose one of auto, torch"):
        create_restorer(ModelOptions(), RestoreOptions(backend="tflite"))
