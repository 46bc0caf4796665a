"""Restorers on a CUDA GPU against the CPU reference (marked ``gpu``: skipped without CUDA).

Tolerances: fp32 on CUDA (TF32 off) within 1e-3 of the CPU; fp16/bf16 judged like the quality
gate — worst-face PSNR ≥ 40 dB against FP32 on the real gate crops.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpen_video.backends.torch_backend import TorchRestorer
from gpen_video.engine.gate import GATE_PSNR_DB, compare, load_gate_faces, strict_fp32
from gpen_video.options import RestoreOptions
from tests.engine_helpers import small_gpen

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def faces(testdata):
    return load_gate_faces(64)


@pytest.fixture(scope="module")
def cpu_out(faces):
    with TorchRestorer(small_gpen(), RestoreOptions(device="cpu"), size=64) as r:
        return r.restore(faces)


def test_torch_cuda_fp32_matches_cpu(faces, cpu_out):
    net = small_gpen(seed=0)
    import copy

    with strict_fp32(), TorchRestorer(copy.deepcopy(net),
                                      RestoreOptions(device="cuda", precision="fp32"), size=64) as r:
        out = r.restore(faces)
    assert float(np.abs(out - cpu_out).max()) <= 1e-3


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torch_cuda_half_precision_within_the_gate(faces, cpu_out, precision):
    import copy

    with TorchRestorer(copy.deepcopy(small_gpen()),
                       RestoreOptions(device="cuda", precision=precision), size=64) as r:
        out = r.restore(faces)
        on_device = r.restore(torch.from_numpy(faces).cuda())
    assert on_device.is_cuda  # torch in, torch out, on the restorer's device
    report = compare(out, cpu_out)
    assert report.psnr_db >= GATE_PSNR_DB, report.summary()


def test_cuda_graphs_captured_at_load_replay_like_the_eager_forward(faces):
    """Graphs for 1, 2, 4 (batch 4) exist right after load(), before any restore; a full and a
    partial (padded) batch replay them with the eager network's output, each call's result
    survives the next replay, and no graph is added later."""
    import copy

    eager = TorchRestorer(copy.deepcopy(small_gpen()),
                          RestoreOptions(device="cuda", precision="fp16", cuda_graphs=False),
                          size=64)
    graphed = TorchRestorer(copy.deepcopy(small_gpen()),
                            RestoreOptions(device="cuda", precision="fp16", batch=4), size=64)
    with eager, graphed:
        assert graphed.graph_sizes == (1, 2, 4)  # captured in load()
        full, part = faces[:4], faces[4:7]
        first = graphed.restore(full)
        second = graphed.restore(part)
        again = graphed.restore(full)
        assert graphed.graph_sizes == (1, 2, 4) and not graphed._forward.disabled
        np.testing.assert_allclose(first, eager.restore(full), atol=2e-3)
        np.testing.assert_allclose(second, eager.restore(part), atol=2e-3)
        np.testing.assert_array_equal(first, again)  # replays are deterministic


def test_restores_while_another_thread_runs_cuda_work(faces):
    """The pipeline's situation: the detector and compositing threads use CUDA while the restore
    thread replays graphs. With every capture done at load nothing fails on either side."""
    import copy
    import threading

    errors: list[str] = []
    stop = threading.Event()

    def other() -> None:
        try:
            n = 0
            while not stop.is_set():  # new sizes: allocations, kernels and a download each time
                a = torch.empty((1 + n % 61) * 4096 + n, device="cuda").normal_()
                a[:8].cpu()
                n += 1
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(f"{type(exc).__name__}: {exc}")

    with TorchRestorer(copy.deepcopy(small_gpen()),
                       RestoreOptions(device="cuda", precision="fp16", batch=8), size=64) as r:
        thread = threading.Thread(target=other)
        thread.start()
        try:
            outs = [r.restore(torch.from_numpy(faces[: 1 + k % 6]).cuda()) for k in range(24)]
            torch.cuda.synchronize()
        finally:
            stop.set()
            thread.join()
        assert not errors and not r._forward.disabled
        assert r.graph_sizes == (1, 2, 4, 8)
        assert all(o.shape[0] == 1 + k % 6 for k, o in enumerate(outs))


def test_half_precision_is_gated_at_load_and_the_verdict_cached(faces, tmp_path):
    """fp16 on CUDA: the gate runs in load() against strict FP32 on the real crops, the verdict
    lands in the engine folder, and a second load reads it instead of gating again."""
    import copy
    import json

    options = RestoreOptions(device="cuda", precision="fp16", engine_dir=tmp_path)
    with TorchRestorer(copy.deepcopy(small_gpen()), options, size=64) as r:
        first = r.gate
        assert first is not None and first.gated_now and r.precision == first.precision
    files = sorted(tmp_path.glob("torch-gate-64px-*.json"))
    assert files
    record = json.loads(files[0].read_text())
    assert record["key"]["gpu"] == torch.cuda.get_device_name(0) and "psnr_db" in record
    with TorchRestorer(copy.deepcopy(small_gpen()), options, size=64) as r:
        assert r.gate.gated_now == () and r.precision == first.precision
