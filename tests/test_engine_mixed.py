"""FP16/BF16 written into the ONNX graph for strongly typed TensorRT builds
(:mod:`gpen_video.engine.mixed`), checked on a real exported GPEN (random weights, 64 px) with
onnx's type inference and, for FP16, by running the rewritten graph in onnxruntime on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from gpen_video.engine.precision import FP16_POLICIES, plan_onnx
from tests.engine_helpers import small_onnx
from tests.geometry import psnr as psnr_of

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from gpen_video.engine.mixed import BF16_OPSET, mixed_onnx, to_mixed_precision  # noqa: E402

FLOAT, FLOAT16, BFLOAT16 = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                            onnx.TensorProto.BFLOAT16)


def _types(model) -> dict[str, int]:
    g = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(g.input) + list(g.output) + list(g.value_info)}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


def _run(model, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def fp32():
    return onnx.load(str(small_onnx()))


@pytest.fixture(scope="module")
def plans():
    return {p.name: plan_onnx(small_onnx(), p) for p in FP16_POLICIES}


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(3).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)


@pytest.mark.parametrize("precision, low", [("fp16", FLOAT16), ("bf16", BFLOAT16)])
def test_kept_nodes_read_float32_and_the_rest_the_low_type(fp32, plans, precision, low):
    plan = plans["style"]
    mixed = to_mixed_precision(fp32, precision, plan.low)  # passes onnx.checker (full check)
    types = _types(mixed)
    nodes = {n.name: n for n in mixed.graph.node}
    # the engine's input and output stay float32
    assert [types[i.name] for i in mixed.graph.input] == [FLOAT]
    assert [types[o.name] for o in mixed.graph.output] == [FLOAT]
    # a kept node reads float32, and where its input comes from another kept node nothing on the
    # way is in the low type (a per-node converter rounds there: Add → fp16 → fp32 → Sqrt)
    producer = {o: n for n in mixed.graph.node for o in n.output}
    kept_to_kept = 0
    for name in plan.pinned:
        for t in nodes[name].input:
            assert types.get(t) != low, (name, t)
            chain = [t]
            while t in producer and producer[t].op_type == "Cast":
                t = producer[t].input[0]
                chain.append(t)
            if t in producer and producer[t].name in plan.pinned:
                kept_to_kept += 1
                assert all(types.get(c) != low for c in chain), (name, chain)
    assert kept_to_kept > 100
    sqrt = nodes["/generator/convs.7/conv/Sqrt"]
    assert producer[sqrt.input[0]].name == "/generator/convs.7/conv/Add"
    # ... and every image convolution computes in the low type, weights stored in it
    convs = [n for n in mixed.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(types[n.output[0]] == low for n in convs)
    inits = {i.name: i.data_type for i in mixed.graph.initializer}
    assert any(inits.get(n.input[1]) == low for n in convs)
    # casts only at the borders: far fewer than two per kept node
    added = (sum(n.op_type == "Cast" for n in mixed.graph.node)
             - sum(n.op_type == "Cast" for n in fp32.graph.node))
    assert 0 < added < len(plan.pinned)
    if precision == "bf16":
        assert max(o.version for o in mixed.opset_import if o.domain in ("", "ai.onnx")) \
            == BF16_OPSET


def test_fp16_graph_stays_close_and_keeping_more_in_fp32_brings_it_closer(fp32, plans, batch):
    reference = _run(fp32, batch)
    # the raw output spans about [-1, 1]: peak-to-peak 2
    psnr = {name: psnr_of(_run(to_mixed_precision(fp32, "fp16", plan.low), batch), reference,
                          peak=2.0) for name, plan in plans.items()}
    # measured here: 71.2 dB (style path in FP32) and 80.7 dB (also ≤ 32 px): random weights,
    # so only the ordering and the margin over the gate's 40 dB are asserted
    assert psnr["style"] > 60.0
    assert psnr["style+lowres"] > psnr["style"] + 3.0


def test_the_rewritten_graph_passes_the_gate_on_real_faces(testdata, plans, tmp_path):
    """The FP16 graph TensorRT would be given, run by onnxruntime on the CPU, through the same
    quality gate an engine meets (real aligned faces, FP32 torch as the reference)."""
    from gpen_video.backends.onnxruntime_backend import OnnxRuntimeRestorer
    from gpen_video.backends.torch_backend import TorchRestorer
    from gpen_video.engine.gate import load_gate_faces, run_gate
    from gpen_video.options import RestoreOptions
    from tests.engine_helpers import small_gpen

    path = mixed_onnx(small_onnx(), "fp16", FP16_POLICIES[0])
    faces = load_gate_faces(64)
    with OnnxRuntimeRestorer(path, RestoreOptions(device="cpu"), threads=1) as candidate, \
            TorchRestorer(small_gpen(), RestoreOptions(device="cpu"), size=64) as reference:
        report = run_gate(candidate, reference, faces)
    assert report.passed, report.summary()
    assert 40.0 < report.psnr_db < 100.0  # FP16 is close to FP32, and not the same


def test_mixed_file_is_cached_beside_the_fp32_export(plans):
    path = mixed_onnx(small_onnx(), "fp16", FP16_POLICIES[1])
    assert path.parent == small_onnx().parent and path.name.endswith(".fp16-style-lowres-m1.onnx")
    stamp = path.stat().st_mtime_ns
    assert mixed_onnx(small_onnx(), "fp16", FP16_POLICIES[1]) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not rewritten
    loaded = onnx.load(str(path))
    assert sum(i.data_type == FLOAT16 for i in loaded.graph.initializer) > 0


def test_unknown_precision_is_refused(fp32):
    from gpen_video.errors import GpenVideoError

    with pytest.raises(GpenVideoError, match="fp16 or bf16"):
        to_mixed_precision(fp32, "fp8", [])
