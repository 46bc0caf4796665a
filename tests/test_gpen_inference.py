"""The inference form of GPEN (gpen_video.models.inference) against the plain module: every
tactic at every kind of site within 1e-5 (fp32, max abs) of the reference network, and the
official reference tensors still reproduced."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from gpen_video.backends.torch_backend import to_channels_last
from gpen_video.models.config import GpenConfig
from gpen_video.models.gpen import GPEN
from gpen_video.models.inference import (BLUR_TACTICS, MODULATION_TACTICS, TacticPlan,
                                         composite_kernel, inference_form, uniform_plan)
from gpen_video.models.load import build_gpen, load_gpen
from gpen_video.models.weights import REGISTRY

TOLERANCE = 1e-5
COMBOS = [f"{b}/{m}" for b in BLUR_TACTICS for m in MODULATION_TACTICS]


def rotated(form, shift: int) -> TacticPlan:
    """Every site a different tactic, cycling through its candidates from ``shift``: two shifts
    put each blur tactic at an encoder site and each blur × modulation at a decoder upsampling
    site of a GPEN-512."""
    return TacticPlan.of({name: site.candidates()[(i + shift) % len(site.candidates())]
                          for i, (name, site) in enumerate(form.sites().items())}, "custom")


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.fixture(scope="module")
def gpen256() -> GPEN:
    return build_gpen(REGISTRY["GPEN-BFR-256"].gpen, seed=3)


@pytest.mark.parametrize("blur,modulation", list(itertools.product(BLUR_TACTICS,
                                                                  MODULATION_TACTICS)))
def test_every_tactic_matches_the_plain_gpen_256(gpen256: GPEN, blur: str, modulation: str
                                                 ) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 256, 256, generator=generator) * 2 - 1  # batch 2: grouped weights too
    form = inference_form(gpen256)
    form.apply_plan(uniform_plan(form, blur, modulation))
    with torch.inference_mode():
        want = gpen256(x)
        got = form(x)
    assert want.abs().max() > 0.1  # a real signal, not a vanishing one
    assert _max_diff(got, want) <= TOLERANCE


def test_every_tactic_at_every_site_kind_matches_the_plain_gpen_512() -> None:
    net = build_gpen(REGISTRY["GPEN-BFR-512"].gpen, seed=5)
    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(2)) * 2 - 1
    form = to_channels_last(inference_form(net))
    seen = set()
    with torch.inference_mode():
        want = net(x)
        for shift in (0, 1):
            plan = rotated(form, shift)
            form.apply_plan(plan)
            seen |= {(name.startswith("ecd"), t) for name, t in plan.choices}
            got = form(x.contiguous(memory_format=torch.channels_last))
            assert _max_diff(got, want) <= TOLERANCE, plan
    assert {t for down, t in seen if down} == set(BLUR_TACTICS)
    assert set(COMBOS) <= {t for down, t in seen if not down}


def test_the_inference_form_reproduces_the_official_reference(testdata: Path) -> None:
    ref = testdata / "gpen" / "ref128"
    net = load_gpen(ref / "state_dict.pt")
    x = torch.load(ref / "input.pt", weights_only=True)
    want = torch.load(ref / "output.pt", weights_only=True)
    form = inference_form(net)
    with torch.inference_mode():
        plain = net(x)
        for plan in (TacticPlan(), rotated(form, 0), rotated(form, 3)):
            form.apply_plan(plan)
            got = form(x)
            assert _max_diff(got, want) <= 1e-4  # the official-reference standard
            assert _max_diff(got, plain) <= TOLERANCE


def test_the_composite_kernel_is_conv_then_blur() -> None:
    """conv(x, W) then blur(·, f) equals conv(x, W ∗ f) (transposed, stride 2: the decoder's
    upsampling), which is what the composite and sub-pixel tactics rest on."""
    import torch.nn.functional as F

    from gpen_video.models.gpen import make_blur_kernel, upfirdn2d

    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64)  # Cin×Cout×k×k
    x = torch.randn(2, 5, 7, 7, generator=g, dtype=torch.float64)
    f = make_blur_kernel((1, 3, 3, 1), 4).double()
    two_steps = upfirdn2d(F.conv_transpose2d(x, w, stride=2), f, 3, pad=(1, 1))
    one = F.conv_transpose2d(x, composite_kernel(w, f), stride=2, padding=2)
    assert one.shape == two_steps.shape == (2, 3, 14, 14)
    assert _max_diff(one, two_steps) < 1e-12


def test_only_the_chosen_tactics_kernels_are_kept() -> None:
    """Derived kernels cost memory (a 6×6 composite is 4× its 3×3 weight): a site keeps only
    what its tactic uses."""
    net = build_gpen(GpenConfig(64, channel_multiplier=1, narrow=0.25))
    form = inference_form(net)
    plain_bytes = sum(b.numel() for b in form.buffers())
    form.apply_plan(uniform_plan(form, "composite", "activations"))
    assert sum(b.numel() for b in form.buffers()) > plain_bytes
    form.apply_plan(TacticPlan())
    assert sum(b.numel() for b in form.buffers()) == plain_bytes


def test_a_plan_naming_an_unknown_site_or_tactic_is_refused() -> None:
    form = inference_form(build_gpen(GpenConfig(32, channel_multiplier=1, narrow=0.0625)))
    with pytest.raises(ValueError, match="sites this network lacks"):
        form.apply_plan(TacticPlan.of({"convs.99": "weights"}))
    with pytest.raises(ValueError, match="not a tactic"):
        form.apply_plan(TacticPlan.of({"ecd1": "weights"}))
