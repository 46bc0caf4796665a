"""``scripts/gpu_check.sh`` on a machine without a GPU: exit 0, every GPU step reported as
skipped with the reason, and how to run it on a lent machine."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = ("pytest-gpu", "capture", "gate", "engines", "throughput", "profile", "encode", "nvenc",
         "bench-w1", "bench-w4")


def _gpu_check():
    """``scripts/gpu_check.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_every_step_is_skipped_and_the_way_to_run_it_printed(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the script would run the real steps")
    env = {**os.environ, "OUT": str(tmp_path)}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "steps.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == list(STEPS)
    assert all("SKIPPED (no CUDA GPU here" in line for line in lines)
    assert "--prepare" in done.stdout and 'carry [".whl", ".gpucheck"]' in done.stdout


def test_the_data_it_carries_exists_in_the_shared_test_data(testdata):
    module = _gpu_check()
    for folder, names in module.NEEDED.items():
        for name in names:
            assert (testdata / folder / name).is_file(), (folder, name)


def test_the_profile_part_attributes_a_forwards_time_to_its_ops_on_the_cpu():
    """The ``profile`` part's table and summary, on the CPU with a small GPEN of the real layer
    types (the check runs it on CUDA with GPEN-BFR-512): its shares add up, convolutions are
    recognised, and the biggest op by input shape is one the network runs."""
    import torch

    from gpen_video.backends.torch_backend import to_channels_last
    from gpen_video.models.config import GpenConfig
    from gpen_video.models.load import build_gpen

    module = _gpu_check()
    net = to_channels_last(build_gpen(GpenConfig(64, channel_multiplier=1, narrow=0.25), seed=0))
    text, summary = module.profile_forward(net, batch=2, size=64, device="cpu",
                                           dtype=torch.float32, repeats=2)
    assert summary["time_key"] == "self_cpu_time_total" and summary["ms_per_face"] > 0
    assert summary["note"] is None  # the CPU profile has its own times
    shares = [op["share"] for op in summary["ops"]]
    assert shares == sorted(shares, reverse=True) and 0.5 < sum(shares) <= 1.001
    assert any("convolution" in op["op"] for op in summary["ops"][:5])
    assert 0.0 < summary["conv_share"] < 1.0
    top = summary["ops_by_shape"][0]
    assert top["op"] in {op["op"] for op in summary["ops"]} and top["calls"] >= 2
    assert "Self CPU" in text and "by input shape" in text


def test_the_nvenc_part_answers_no_where_there_is_no_gpu_encoder():
    """``nvenc`` reports a machine without NVIDIA's encoder as an answer (works: False, and
    FFmpeg's reason), not as a failed check."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: its encoder may work")
    module = _gpu_check()
    result = module.nvenc(frames=2)
    assert result["works"] is False and result["why"]
    assert isinstance(result["listed"], bool)


def test_the_engines_part_times_each_form_beside_the_roofline_on_the_cpu():
    """The GPU step's code path on the CPU (GPEN-256 fp32, batch 1, eager forms only: the
    compiled engine is tested in tests/test_engine_compiled.py): ms per face of the plain module
    and of the inference form with timed tactics, the modeled floor, and their ratio."""
    result = _gpu_check().engines(device="cpu", cases=((256, 1),), precision="fp32",
                                  compile_=False, repeats=1)
    (row,) = result["rows"]
    assert row["plain_eager_ms"] > 0 and row["form_eager_ms"] > 0
    assert "eager" in row["form_eager_describe"] and len(row["tactics"]) == 26
    assert 0 < row["modeled_compiled_ms"] < row["modeled_eager_ms"]
    ratio = row["measured_over_modeled"]["plain_eager"]
    assert ratio == pytest.approx(row["plain_eager_ms"] / row["modeled_eager_ms"])
