"""``gpen-video engine clean``: what an engine folder holds that this version will not use again
(:mod:`gpen_video.engine.clean`), on a folder with real exports, a real precision graph and gate
reports written the way ``ensure_engine`` writes them (the plan files themselves are placeholder
bytes: clean never reads a plan)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from gpen_video.cli import main
from gpen_video.engine.artifact import write_artifact
from gpen_video.engine.clean import stale_files
from gpen_video.engine.gate import GateReport
from gpen_video.engine.key import BUILD_RECIPE, DeviceInfo, EngineKey
from gpen_video.engine.profile import Profile
from tests.engine_helpers import small_gpen

pytest.importorskip("onnxruntime")


def _report(recipe: int, tensorrt: str, passed: bool = True) -> GateReport:
    key = EngineKey(onnx_sha256="0" * 64, tensorrt_version=tensorrt,
                    device=DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0)), precision="fp16",
                    profile=Profile(), size=64)
    key = dataclasses.replace(key, recipe=recipe)
    return GateReport(candidate="tensorrt", reference="torch fp32", threshold_db=40.0,
                      psnr_db=55.0 if passed else 30.0, psnr_per_image_db=[55.0],
                      max_abs_error=0.01, mean_abs_error=0.001, images=["a.png"], size=64,
                      passed=passed,
                      extra={"precision": "fp16", "key": key.as_dict()})


@pytest.fixture()
def folder(tmp_path):
    from gpen_video.engine.mixed import mixed_onnx
    from gpen_video.engine.onnx_cache import cached_onnx
    from gpen_video.engine.precision import FP16_POLICIES

    f = tmp_path / "engines"
    f.mkdir()
    export = cached_onnx(small_gpen(), f, label="small")  # current recipe
    mixed = mixed_onnx(export, "fp16", FP16_POLICIES[0])  # current format
    old_export = f / "small-64px-opset17-0123456789abcdef.onnx"  # named as recipe 1 was
    shutil.copy(export, old_export)
    shutil.copy(mixed, f / (old_export.name[:-5] + ".fp16-style-m1.onnx"))
    shutil.copy(mixed, f / mixed.name.replace("-m1.onnx", "-m0.onnx"))
    for stem, recipe, passed in (("now", BUILD_RECIPE, True), ("old", 1, True)):
        write_artifact(f / f"{stem}.plan", b"plan")
        _report(recipe, "10.16.1", passed).write(f / f"{stem}.json")
    write_artifact(f / "bare.plan", b"plan")  # never used: no gate report
    _report(BUILD_RECIPE, "10.16.1").write(f / "orphan.json")  # its plan is gone
    _report(BUILD_RECIPE, "10.16.1", False).write(f / "now-rejected.rejected.json")
    _report(1, "10.16.1", False).write(f / "old-rejected.rejected.json")
    write_artifact(f / "timing-trt10.16.1-nvidia-h100-sm90.cache", b"t")
    write_artifact(f / "timing-trt10.8.0-nvidia-h100-sm90.cache", b"t")
    (f / "README.md").write_text("cache\n")
    (f / "profiles.json").write_text("{}\n")
    return f, export.name, mixed.name


def _names(items) -> set[str]:
    return {item.path.name for item in items}


def test_stale_files_by_kind(folder):
    f, export, mixed = folder
    stale = stale_files(f, tensorrt_version=None)
    assert _names(stale) == {
        "small-64px-opset17-0123456789abcdef.onnx",  # export of recipe 1
        "small-64px-opset17-0123456789abcdef.fp16-style-m1.onnx",  # its precision graph
        mixed.replace("-m1.onnx", "-m0.onnx"),  # an earlier rewrite format
        "old.plan", "old.json",  # engine of an earlier build recipe, with its report
        "bare.plan", "orphan.json", "old-rejected.rejected.json",
    }
    kept = {p.name for p in f.iterdir()} - _names(stale)
    assert {export, mixed, "now.plan", "now.json", "now-rejected.rejected.json", "README.md",
            "profiles.json", "timing-trt10.16.1-nvidia-h100-sm90.cache",
            "timing-trt10.8.0-nvidia-h100-sm90.cache"} <= kept
    assert all(item.why for item in stale)


def test_installed_tensorrt_also_retires_other_versions(folder):
    f, _, _ = folder
    same = _names(stale_files(f, tensorrt_version="10.16.1"))
    assert "timing-trt10.8.0-nvidia-h100-sm90.cache" in same
    assert "now.plan" not in same and "timing-trt10.16.1-nvidia-h100-sm90.cache" not in same
    newer = _names(stale_files(f, tensorrt_version="11.4.0"))
    assert {"now.plan", "now.json", "now-rejected.rejected.json",
            "timing-trt10.16.1-nvidia-h100-sm90.cache"} <= newer


def test_clean_command_dry_run_then_delete(folder, capsys):
    f, export, mixed = folder
    before = {p.name for p in f.iterdir()}
    expected = _names(stale_files(f))
    assert main(["engine", "clean", "--engine-dir", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in f.iterdir()} == before  # nothing deleted
    assert f"{len(expected)} stale file(s), would free" in out
    assert all(f"would delete {name}: " in out for name in expected)
    assert main(["engine", "clean", "--engine-dir", str(f)]) == 0
    left = {p.name for p in f.iterdir()}
    # each deleted file's hash (PATH.sha256) goes with it
    assert left == before - expected - {f"{name}.sha256" for name in expected}
    assert all(name[:-len(".sha256")] in left for name in left if name.endswith(".sha256"))
    assert "freed" in capsys.readouterr().out
    assert stale_files(f) == []  # a second clean finds nothing


def test_torch_gate_verdicts_of_another_torch_are_stale(tmp_path):
    def verdict(name: str, version: str) -> None:
        record = {"kind": "torch-precision-gate", "key": {"torch_version": version},
                  "passed": True}
        (tmp_path / name).write_text(json.dumps(record))

    verdict("torch-gate-512px-fp16-aaaa.json", "2.11.0")
    verdict("torch-gate-512px-bf16-bbbb.json", "2.14.1")
    assert stale_files(tmp_path) == []  # no torch version given: judged by nothing
    (old,) = stale_files(tmp_path, torch_version="2.14.1")
    assert old.path.name == "torch-gate-512px-fp16-aaaa.json" and "2.11.0" in old.why
