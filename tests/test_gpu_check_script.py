"""``scripts/gpu_check.sh`` on a machine without a GPU: exit 0, every GPU step reported as
skipped with the reason, and how to run it on a lent machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = ("pytest-gpu", "capture", "gate", "throughput", "bench-w1", "bench-w4", "compile")


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
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for folder, names in module.NEEDED.items():
        for name in names:
            assert (testdata / folder / name).is_file(), (folder, name)
