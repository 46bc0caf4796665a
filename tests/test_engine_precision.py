"""Which layers an FP16 engine keeps in FP32: the policy, on a real exported GPEN graph."""

from __future__ import annotations

import pytest

from gpen_video.engine.precision import (FP16_POLICIES, PinPolicy, is_vector, keep_fp32,
                                         plan_onnx, resolution_from_name)
from tests.engine_helpers import small_onnx

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name, size, res", [
    ("/ecd0/ecd0.0/ecd0.0.0/Conv", 512, 512),
    ("/ecd3/ecd3.0/ecd3.0.1/Conv", 512, 64),
    ("/generator/conv1/conv/Conv", 512, 4),
    ("/generator/to_rgb1/conv/Conv", 512, 4),
    ("/generator/convs.0/conv/ConvTranspose", 512, 8),
    ("/generator/convs.5/conv/Conv", 512, 32),
    ("/generator/convs.13/activate/Mul", 512, 512),
    ("/generator/to_rgbs.2/conv/Conv", 512, 32),
    ("/generator/style/style.3/MatMul", 512, None),
    ("/final_linear/final_linear.0/MatMul", 512, None),
])
def test_resolution_from_name(name, size, res):
    assert resolution_from_name(name, size) == res


def test_keep_fp32_decisions():
    style, low = FP16_POLICIES
    assert is_vector((-1, 512)) and is_vector((-1, 64, 1, 1)) and not is_vector((-1, 64, 8, 8))
    assert keep_fp32("/generator/convs.9/conv/modulation/Gemm", [(-1, 256)], 512, style)
    assert keep_fp32("/generator/convs.9/conv/ReduceSum", [(-1, 256)], 512, style)
    assert not keep_fp32("/generator/convs.9/conv/Conv", [(-1, 256, 128, 128)], 512, style)
    assert not keep_fp32("/generator/convs.1/conv/Conv", [(-1, 512, 8, 8)], 512, style)
    assert keep_fp32("/generator/convs.1/conv/Conv", [(-1, 512, 8, 8)], 512, low)
    # spatial size unknown before the build: the name decides
    assert keep_fp32("/generator/convs.5/conv/Conv", [(-1, 512, -1, -1)], 512, low)
    assert not keep_fp32("/generator/convs.6/conv/Conv", [(-1, 512, -1, -1)], 512, low)
    assert not keep_fp32("/generator/convs.5/conv/Conv", [(-1, 512, -1, -1)], 512,
                         PinPolicy("none", 0))


def test_policies_on_the_exported_graph():
    style = plan_onnx(small_onnx(), FP16_POLICIES[0])
    low = plan_onnx(small_onnx(), FP16_POLICIES[1])
    pinned = style.pinned
    # the whole style path: mapping network, final_linear, every modulation and demodulation
    assert any(n.startswith("/generator/style/") for n in pinned)
    assert all(n in pinned for n in ("/final_linear/final_linear.0/MatMul",
                                     "/generator/convs.0/conv/modulation/Gemm",
                                     "/generator/convs.7/conv/MatMul",  # Σ s²·W²
                                     "/generator/convs.7/conv/Sqrt",
                                     "/generator/to_rgbs.3/conv/modulation/Gemm"))
    # ... and none of the image convolutions
    assert not any(n.endswith(("/Conv", "/ConvTranspose")) for n in pinned)
    assert style.conv_macs_pinned == 0 and style.conv_macs > 0
    # style+lowres adds the ≤ 32 px convolutions, not the 64 px ones of this 64 px model
    assert "/generator/convs.5/conv/Conv" in low.pinned  # 32 px
    assert "/generator/convs.7/conv/Conv" not in low.pinned  # 64 px
    assert "/ecd0/ecd0.0/ecd0.0.0/Conv" not in low.pinned
    assert "/ecd1/ecd1.0/ecd1.0.1/Conv" in low.pinned  # 64 → 32 px
    assert pinned < low.pinned
    assert 0.0 < low.pinned_share < 1.0
