"""Pixels ↔ model tensors: convention, rounding, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpen_video.models.io import from_model, to_model


def test_uint8_convention_matches_the_official_preprocessing() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = to_model(rgb)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    official = (torch.from_numpy(rgb).float() / 255 - 0.5) / 0.5  # channels stay RGB
    assert torch.allclose(x, official.permute(0, 3, 1, 2), atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_integer_round_trip_is_exact(dtype, top: int) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, top + 1, (3, 5, 7, 3)).astype(dtype)
    back = from_model(to_model(rgb), torch.uint8 if dtype == np.uint8 else torch.uint16)
    assert back.shape == rgb.shape
    assert np.array_equal(back.numpy(), rgb)


def test_output_is_clipped_and_rounded_not_truncated() -> None:
    # 0.6 of a level above 100 and 0.4 above 200: rounding gives 101 and 200 (truncation: 100, 200)
    levels = torch.tensor([100.6, 200.4, -5.0, 300.0])
    out = (levels / 255 - 0.5) / 0.5
    x = out.view(1, 1, 1, 4).expand(1, 3, 1, 4)
    pixels = from_model(x)
    assert pixels.dtype == torch.uint8 and pixels.shape == (1, 1, 4, 3)
    assert pixels[0, 0, :, 0].tolist() == [101, 200, 0, 255]


def test_float_pixels_in_and_out() -> None:
    rgb = torch.linspace(0, 1, 3 * 4 * 4 * 3).view(3, 4, 4, 3)
    x = to_model(rgb, dtype=torch.float32)
    assert torch.allclose(x.min(), torch.tensor(-1.0)) and torch.allclose(x.max(), torch.tensor(1.0))
    back = from_model(x, torch.float32)
    assert torch.allclose(back, rgb, atol=1e-6)
    single = to_model(rgb[0])  # one H×W×3 crop gets a batch of 1
    assert single.shape == (1, 3, 4, 4)


def test_bad_inputs_say_what_is_expected() -> None:
    with pytest.raises(ValueError, match="N×H×W×3"):
        to_model(np.zeros((2, 3, 8, 8), np.uint8))  # channels first
    with pytest.raises(ValueError, match="uint8"):
        to_model(np.zeros((1, 8, 8, 3), np.int32))
    with pytest.raises(ValueError, match="N×3×H×W"):
        from_model(torch.zeros(1, 8, 8, 3))


def test_restorer_value_mapping_is_one_function_for_numpy_and_torch():
    """``unit_to_model``/``model_to_unit`` (what every backend calls) agree bit for bit between
    numpy and torch, in place and not, and invert each other on [0, 1]."""
    from gpen_video.models.io import model_to_unit, model_to_unit_, unit_to_model, unit_to_model_

    x = np.random.default_rng(2).random((2, 3, 8, 8), dtype=np.float32)
    t = torch.from_numpy(x.copy())
    signed = unit_to_model(x)
    assert signed.dtype == np.float32 and np.array_equal(signed, unit_to_model(t).numpy())
    assert np.array_equal(signed, unit_to_model_(t.clone()).numpy())
    assert np.array_equal(x, t.numpy())  # the out-of-place forms leave the input alone
    raw = np.linspace(-1.5, 1.5, 2 * 3 * 8 * 8, dtype=np.float32).reshape(x.shape)
    unit = model_to_unit(raw)
    assert unit.min() == 0.0 and unit.max() == 1.0  # clipped
    assert np.array_equal(unit, model_to_unit(torch.from_numpy(raw)).numpy())
    assert np.array_equal(unit, model_to_unit_(torch.from_numpy(raw.copy())).numpy())
    np.testing.assert_allclose(model_to_unit(signed), x, atol=1e-7)
