"""The GPEN network: official reference output, official keys and shapes, building blocks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gpen_video.models.config import GpenConfig
from gpen_video.models.gpen import (
    GPEN,
    ModulatedConv2d,
    gpen_channels,
    upfirdn2d,
    upfirdn2d_reference,
)
from gpen_video.models.load import build_gpen, expected_shapes, infer_config, load_gpen
from gpen_video.models.weights import REGISTRY

TOL_REF = 1e-4  # DESIGN §3: max abs error against the official implementation, fp32 CPU


@pytest.fixture(scope="module")
def ref128(testdata: Path) -> dict:
    folder = testdata / "gpen" / "ref128"
    meta = json.loads((folder / "meta.json").read_text())
    return {
        "meta": meta,
        "state_dict": folder / "state_dict.pt",
        "input": torch.load(folder / "input.pt", weights_only=True),
        "output": torch.load(folder / "output.pt", weights_only=True),
    }


@pytest.fixture(scope="module")
def model128(ref128: dict) -> GPEN:
    return load_gpen(ref128["state_dict"])


def test_ref128_config_is_inferred_from_the_tensors(ref128: dict, model128: GPEN) -> None:
    meta = ref128["meta"]
    expected = GpenConfig(meta["size"], meta["channel_multiplier"], meta["narrow"],
                          meta["style_dim"], meta["n_mlp"], meta["lr_mlp"],
                          tuple(meta["blur_kernel"]), meta["isconcat"])
    assert model128.config == expected
    state = torch.load(ref128["state_dict"], weights_only=True)
    assert infer_config(state) == expected
    assert not model128.training
    assert not any(p.requires_grad for p in model128.parameters())


def test_ref128_batch_reproduces_official_output(ref128: dict, model128: GPEN) -> None:
    x, expected = ref128["input"], ref128["output"]
    assert x.shape == (2, 3, 128, 128)
    with torch.inference_mode():
        got = model128(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL_REF


def test_ref128_each_sample_alone_reproduces_official_output(ref128: dict, model128: GPEN) -> None:
    x, expected = ref128["input"], ref128["output"]
    with torch.inference_mode():
        for i in range(x.shape[0]):
            got = model128(x[i : i + 1])
            assert (got - expected[i : i + 1]).abs().max().item() <= TOL_REF, f"sample {i}"


def test_forward_is_deterministic(ref128: dict, model128: GPEN) -> None:
    x = ref128["input"]
    with torch.inference_mode():
        assert torch.equal(model128(x), model128(x))


@pytest.mark.parametrize("size", [128, 256, 512])
def test_official_keys_and_shapes(testdata: Path, size: int) -> None:
    """Keys, order and shapes equal the official FullGenerator's (built on the meta device)."""
    listed = json.loads((testdata / "gpen" / f"keys_{size}.json").read_text())
    config = {128: GpenConfig(128, 2, 0.125), 256: REGISTRY["GPEN-BFR-256"].gpen,
              512: REGISTRY["GPEN-BFR-512"].gpen}[size]
    got = [[key, list(shape)] for key, shape in expected_shapes(config).items()]
    assert got == listed


def test_official_parameter_counts() -> None:
    """DESIGN §3: GPEN-BFR-512 has 71.0 M parameters, GPEN-BFR-256 18.9 M."""
    counts = {}
    for name in ("GPEN-BFR-256", "GPEN-BFR-512"):
        with torch.device("meta"):
            model = GPEN(REGISTRY[name].gpen)
        counts[name] = sum(p.numel() for p in model.parameters())
    assert round(counts["GPEN-BFR-512"] / 1e6, 1) == 71.0
    assert round(counts["GPEN-BFR-256"] / 1e6, 1) == 18.9


@pytest.mark.parametrize("name", ["GPEN-BFR-1024", "GPEN-BFR-2048"])
def test_hires_configs_build_with_the_documented_channels(name: str) -> None:
    """The full-size 1024/2048 architectures build (meta device: no memory, no time)."""
    config = REGISTRY[name].gpen
    shapes = expected_shapes(config)
    log_size = int(math.log2(config.size))
    channels = gpen_channels(config)
    assert channels[config.size] == {1024: 32, 2048: 16}[config.size]  # b·cm·narrow, b = 16 | 8
    assert f"ecd{log_size - 2}.0.1.weight" in shapes and f"ecd{log_size - 1}.0.1.weight" not in shapes
    assert shapes["ecd0.0.0.weight"] == (channels[config.size], 3, 1, 1)
    last = 2 * (log_size - 2) - 1
    assert shapes[f"generator.convs.{last}.conv.weight"] == (
        1, channels[config.size], 2 * channels[config.size], 3, 3)
    assert f"generator.convs.{last + 1}.conv.weight" not in shapes
    assert shapes["final_linear.0.weight"] == (512, 512 * 16)


@pytest.mark.parametrize("size", [1024, 2048])
def test_hires_forward_at_batch_1_size_reduced(size: int) -> None:
    """1024/2048 depth and resolution, channels cut to narrow = 1/16 (size-reduced).

    The full-width models cost several hundred GFLOP per face, minutes on this 2-core CPU, so the
    forward is checked at full resolution and depth with 1/16 of the channels (the full forward
    at 1024 is the slow-marked test below).
    """
    config = GpenConfig(size, channel_multiplier=2, narrow=1 / 16)
    model = build_gpen(config, seed=3)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (1, 3, size, size)
    assert torch.isfinite(y).all()


@pytest.mark.slow
def test_full_gpen_bfr_1024_forward_at_batch_1() -> None:
    model = build_gpen(REGISTRY["GPEN-BFR-1024"].gpen, seed=0)
    with torch.inference_mode():
        y = model(torch.zeros(1, 3, 1024, 1024))
    assert y.shape == (1, 3, 1024, 1024) and torch.isfinite(y).all()


def test_random_weights_are_seeded_and_leave_global_rng_alone() -> None:
    config = GpenConfig(32, narrow=1 / 16)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_gpen(config, seed=5)
    after = torch.rand(1)
    b = build_gpen(config, seed=5)
    c = build_gpen(config, seed=6)
    assert torch.equal(before, after)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["generator.input.input"], sc["generator.input.input"])
    assert any(float(v) != 0.0 for k, v in sa.items() if k.endswith("noise.weight"))


# --- building blocks against direct transcriptions of the official formulas -------------------


def _grouped_modulated_conv(layer: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor
                            ) -> torch.Tensor:
    """The official fused form: per-sample weights, one grouped conv with groups = batch."""
    n, cin, h, wd = x.shape
    style = layer.modulation(w).view(n, 1, cin, 1, 1)
    weight = layer.scale * layer.weight * style  # N×Cout×Cin×k×k
    cout, k = weight.shape[1], weight.shape[-1]
    if layer.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, cout, 1, 1, 1)
    if layer.upsample:
        weight = weight.transpose(1, 2).reshape(n * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, n * cin, h, wd), weight, stride=2, groups=n)
        return layer.blur(out.view(n, cout, *out.shape[2:]))
    out = F.conv2d(x.reshape(1, n * cin, h, wd), weight.view(n * cout, cin, k, k),
                   padding=layer.padding, groups=n)
    return out.view(n, cout, *out.shape[2:])


@pytest.mark.parametrize("upsample,demodulate,k", [(False, True, 3), (True, True, 3),
                                                   (False, False, 1)])
def test_unfused_modulated_conv_equals_grouped_form(upsample: bool, demodulate: bool, k: int
                                                    ) -> None:
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 5, k, style_dim=8, demodulate=demodulate, upsample=upsample)
    with torch.no_grad():
        layer.modulation.bias.normal_()  # styles far from 1, and negative ones
        x, w = torch.randn(3, 6, 9, 9), torch.randn(3, 8)
        got, ref = layer(x, w), _grouped_modulated_conv(layer, x, w)
    assert got.shape == ref.shape == (3, 5, 18 if upsample else 9, 18 if upsample else 9)
    assert (got - ref).abs().max().item() < 1e-5


def _upfirdn2d_loops(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int,
                     pad: tuple[int, int]) -> torch.Tensor:
    """Textbook upfirdn: zero-stuff, pad, true convolution (kernel flipped), keep every down-th."""
    n, c, h, w = x.shape
    stuffed = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    stuffed[:, :, ::up, ::up] = x
    p = F.pad(stuffed, (pad[0], pad[1], pad[0], pad[1]))
    kh, kw = kernel.shape
    oh, ow = p.shape[2] - kh + 1, p.shape[3] - kw + 1
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out += kernel[kh - 1 - i, kw - 1 - j] * p[:, :, i : i + oh, j : j + ow]
    return out[:, :, ::down, ::down]


# GPEN's three uses (blur after the upsampling conv, skip upsample, encoder blur), then cases
# that take the step-by-step path: asymmetric pad, cropping, upsampling with other padding.
UPFIRDN_CASES = [(1, 1, (1, 1)), (2, 1, (2, 1)), (1, 2, (2, 2)), (1, 1, (2, 1)), (1, 1, (-1, 0)),
                 (2, 1, (1, 2)), (2, 2, (2, 1))]


@pytest.mark.parametrize("up,down,pad", UPFIRDN_CASES)
def test_upfirdn2d_matches_textbook_definition(up: int, down: int, pad: tuple[int, int]) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    kernel = torch.rand(4, 4, dtype=torch.float64)  # asymmetric: catches a missing flip
    expected = _upfirdn2d_loops(x, kernel, up, down, pad)
    for impl in (upfirdn2d, upfirdn2d_reference):
        got = impl(x, kernel, 3, up=up, down=down, pad=pad)
        assert got.shape == expected.shape, impl.__name__
        assert torch.allclose(got, expected, atol=1e-12), impl.__name__
