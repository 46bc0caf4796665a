"""ONNX export: dynamic batch, checker-valid, onnxruntime agrees with torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gpen_video.cli import main
from gpen_video.models.export import compare_with_onnxruntime, export_onnx
from gpen_video.models.load import build_gpen, load_gpen
from gpen_video.models.weights import REGISTRY
from tests.engine_helpers import small_gpen

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL_ONNX = 1e-3


def _models(testdata: Path) -> dict:
    return {
        # the official reference weights (size 128, channel_multiplier 2, narrow 0.125)
        "ref128": lambda: load_gpen(testdata / "gpen" / "ref128" / "state_dict.pt"),
        # the full GPEN-BFR-256 architecture (18.9 M parameters) with random weights
        "GPEN-BFR-256": lambda: build_gpen(REGISTRY["GPEN-BFR-256"].gpen, seed=0),
    }


@pytest.mark.parametrize("which", ["ref128", "GPEN-BFR-256"])
def test_onnx_matches_torch_at_batch_1_and_3(testdata: Path, tmp_path: Path, which: str) -> None:
    model = _models(testdata)[which]()
    path = export_onnx(model, tmp_path / f"{which}.onnx")

    proto = onnx.load(str(path), load_external_data=False)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    size = model.config.size
    for value in (inp, out):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and not dims[0].HasField("dim_value")
        assert [d.dim_value for d in dims[1:]] == [3, size, size]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["gpen_config"])["size"] == size

    errors = compare_with_onnxruntime(model, path, batches=(1, 3))
    assert set(errors) == {1, 3}
    assert max(errors.values()) <= TOL_ONNX, errors

    if which != "ref128":
        return
    # A face gives the same output alone and inside a batch: nothing in the graph couples samples.
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = (torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(4)) * 2 - 1).numpy()
    (batch,) = session.run(None, {"input": x})
    (alone,) = session.run(None, {"input": x[1:2]})
    assert abs(batch[1:2] - alone).max() <= 1e-5


def test_export_refuses_a_missing_folder(tmp_path: Path) -> None:
    from gpen_video.errors import OutputError

    model = small_gpen()
    with pytest.raises(OutputError, match="does not exist"):
        export_onnx(model, tmp_path / "no" / "such" / "x.onnx")


def test_cli_export_with_random_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small.onnx"
    code = main(["export", "--model", "GPEN-BFR-256", "--random-weights", "--size", "64",
                 "--narrow", "0.125", "--cache-dir", str(tmp_path / "cache"), str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "onnxruntime matches torch" in captured.out
    assert out.is_file() and not list(tmp_path.glob(".*.part"))
    assert not (tmp_path / "cache").exists()  # random weights never touch the cache
    # it refuses to overwrite without -y
    assert main(["export", "--model", "GPEN-BFR-256", "--random-weights", "--size", "64",
                 "--narrow", "0.125", "--no-verify", str(out)]) == 2
    assert "pass -y" in capsys.readouterr().err


def test_export_has_every_convolution_weight_as_a_constant(tmp_path):
    """The exporter leaves the FIR kernels of blur/upsampling as a constant subgraph feeding the
    convolution weights; the export folds it (TensorRT wants build-time kernels)."""
    import onnx

    from gpen_video.models.export import export_onnx
    from gpen_video.models.onnx_fold import fold_constants

    path = export_onnx(small_gpen(), tmp_path / "g.onnx")
    model = onnx.load(str(path))
    constants = {i.name for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(n.input[1] in constants for n in convs)
    upsampling = [n for n in convs if n.op_type == "ConvTranspose" and "upsample" in n.name]
    assert upsampling  # the nodes that had computed (Expand) weights before folding
    assert fold_constants(model) == 0  # nothing constant left to fold
