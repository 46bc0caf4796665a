"""The torch backend's quality gate for fp16/bf16 and its fallback, on the CPU.

Half precision cannot run on the CPU path, so the candidates are emulated
(:func:`tests.engine_helpers.emulated_precision`: weights and every layer's output rounded to the
dtype) around a random-weight GPEN of the real architecture (64 px, narrow); the reference is the
same network in plain fp32, the faces are the gate's real crops. A precision name stands for the
emulated dtype the test gives it (bfloat16 passes; float8 is too coarse for any face). What is under test is real: the gate, the
fallback order, the cache and the log line.
"""

from __future__ import annotations

import copy
import json
import logging
import math

import pytest
import torch

from gpen_video.backends.torch_backend import TorchRestorer
from gpen_video.backends.torch_gate import TorchGateKey, choose_precision, weights_sha256
from gpen_video.engine.gate import load_gate_faces
from gpen_video.options import RestoreOptions
from tests.engine_helpers import emulated_precision, small_gpen

EXACT, BF16, COARSE = None, torch.bfloat16, torch.float8_e4m3fn


@pytest.fixture(scope="module")
def faces(testdata):
    return load_gate_faces(64)


@pytest.fixture(scope="module")
def net():
    return small_gpen(seed=0)


class Candidates:
    """Restorers per precision name, emulating the given dtypes (None: exact); counts builds."""

    def __init__(self, net, dtypes: dict) -> None:
        self.net, self.dtypes, self.built = net, dtypes, []

    def __call__(self, precision: str) -> TorchRestorer:
        self.built.append(precision)
        dtype = self.dtypes[precision]
        model = (copy.deepcopy(self.net) if dtype is None
                 else emulated_precision(self.net, dtype))
        return TorchRestorer(model, RestoreOptions(device="cpu"), size=64, quality_gate=False)

    def reference(self) -> TorchRestorer:
        self.built.append("reference")
        return TorchRestorer(copy.deepcopy(self.net), RestoreOptions(device="cpu"), size=64,
                             quality_gate=False)


def _key_for(net, **changes):
    digest = weights_sha256(net)

    def key_for(precision: str) -> TorchGateKey:
        fields = dict(weights_sha256=digest, gpu="emulated", compute_capability="0.0",
                      precision=precision, torch_version="test", size=64)
        fields.update(changes)
        return TorchGateKey(**fields)
    return key_for


def test_an_exact_precision_passes_and_is_kept(net, faces, tmp_path, caplog):
    made = Candidates(net, {"fp16": EXACT})
    with caplog.at_level(logging.WARNING, logger="gpen_video.backends"):
        choice = choose_precision("fp16", _key_for(net), made, made.reference, lambda: faces,
                                  tmp_path)
    assert choice.precision == "fp16" and choice.line is None and not caplog.records
    (entry,) = choice.entries
    assert entry.passed and math.isinf(entry.psnr_db) and entry.max_abs_error_8bit == 0.0
    record = json.loads((tmp_path / entry.key.filename()).read_text())
    assert record["passed"] is True and record["psnr_db"] == "inf" and record["fallback"] is None


def test_a_coarse_precision_fails_falls_back_with_one_line_and_is_cached(net, faces, tmp_path,
                                                                        caplog):
    made = Candidates(net, {"fp16": COARSE, "bf16": BF16})
    with caplog.at_level(logging.WARNING, logger="gpen_video.backends"):
        choice = choose_precision("fp16", _key_for(net), made, made.reference, lambda: faces,
                                  tmp_path)
    assert choice.precision == "bf16" and choice.gated_now == ("fp16", "bf16")
    assert sorted(made.built) == ["bf16", "fp16", "reference"]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [choice.line]
    assert "--precision fp16" in lines[0] and "using bf16" in lines[0]
    fp16, bf16 = choice.entries
    assert not fp16.passed and fp16.psnr_db < 40.0 and fp16.max_abs_error_8bit > 0
    assert bf16.passed and bf16.psnr_db >= 40.0
    record = json.loads((tmp_path / fp16.key.filename()).read_text())
    assert record["passed"] is False and record["fallback"] == "bf16"
    assert record["psnr_db"] == pytest.approx(fp16.psnr_db, abs=1e-3)
    assert record["max_abs_error_8bit"] == pytest.approx(fp16.max_abs_error_8bit, abs=1e-3)
    assert record["report"]["psnr_per_image_db"] and record["key"]["precision"] == "fp16"

    # the next run with the same key reads the verdicts: no restorer built, same choice and line
    again = Candidates(net, {"fp16": COARSE, "bf16": BF16})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gpen_video.backends"):
        cached = choose_precision("fp16", _key_for(net), again, again.reference,
                                  lambda: pytest.fail("faces read"), tmp_path)
    assert again.built == [] and cached.gated_now == ()
    assert cached.precision == "bf16" and [r.getMessage() for r in caplog.records] == [cached.line]

    # another torch version (GPU, weights) is another key, another file: the gate would run
    other = _key_for(net, torch_version="other")("fp16")
    assert other.filename() != fp16.key.filename()
    assert not (tmp_path / other.filename()).exists()


def test_when_every_half_precision_fails_fp32_is_used_and_recorded(net, faces, tmp_path):
    made = Candidates(net, {"bf16": COARSE})
    choice = choose_precision("bf16", _key_for(net), made, made.reference, lambda: faces,
                              tmp_path)
    assert choice.precision == "fp32" and "using fp32" in choice.line
    record = json.loads((tmp_path / choice.entries[0].key.filename()).read_text())
    assert record["passed"] is False and record["fallback"] == "fp32"


def test_the_weights_digest_follows_the_values(net):
    same = copy.deepcopy(net)
    assert weights_sha256(same) == weights_sha256(net)
    other = small_gpen(seed=1)
    assert weights_sha256(other) != weights_sha256(net)
