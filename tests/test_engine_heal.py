"""Caches that heal (issue 37, defects 3 and 5): a cached ONNX export that is truncated, empty,
garbled or has no hash beside it is named in one warning, removed and rebuilt by the next run,
which succeeds; ``engine list`` and ``engine clean`` see it; a read-only engine folder holding a
sound export is used as it is (and one without it is refused with where to point
``--engine-dir``).

Runs are real ``gpen-video`` command lines (in this process) on a 4-frame clip with the tests'
small random-weight GPEN (plumbing only) through onnxruntime, which caches the export.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpen_video.cli import main
from gpen_video.engine.artifact import (check_artifact, damage, hash_path, read_verified,
                                        write_artifact)
from gpen_video.engine.clean import cache_problems
from tests.media_helpers import VideoSpec, make_video
from tests.pipeline_helpers import save_small_gpen

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def job(testdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("heal")
    return {"clip": make_video(root / "clip.mp4", VideoSpec(n=4)),
            "model": save_small_gpen(root / "gpen128-random.pth"),
            "weights": testdata / "weights" / "detection_mobilenet0.25_Final.pth"}


def _run(job, engines: Path, out: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(job["clip"]), str(out), "-y", "--model", str(job["model"]),
                 "--backend", "onnxruntime", "--device", "cpu", "--engine-dir", str(engines),
                 "--detector-weights", str(job["weights"]), "--progress", "none"])
    return code, capsys.readouterr().err


def _export(engines: Path) -> Path:
    (onnx,) = engines.glob("*.onnx")
    return onnx


DAMAGES = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                  "truncated ("),
    "zero bytes": (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "garbage": (lambda p: p.write_bytes(bytes((b ^ 0x5A) for b in p.read_bytes())),
                "garbled"),
    "missing hash": (lambda p: hash_path(p).unlink(), "no hash beside it"),
}


@pytest.fixture(scope="module")
def exported(job, tmp_path_factory):
    """An engine folder in which a first run exported the model."""
    engines = tmp_path_factory.mktemp("engines")
    code = main([str(job["clip"]), str(tmp_path_factory.mktemp("o") / "o.mp4"), "--model",
                 str(job["model"]), "--backend", "onnxruntime", "--device", "cpu",
                 "--engine-dir", str(engines), "--detector-weights", str(job["weights"]),
                 "--progress", "none"])
    assert code == 0
    return engines


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_a_damaged_export_is_named_once_removed_and_rebuilt(job, exported, tmp_path, capsys,
                                                            kind):
    engines = tmp_path / "engines"
    shutil.copytree(exported, engines)
    onnx = _export(engines)
    assert damage(onnx) is None
    spoil, reason = DAMAGES[kind]
    spoil(onnx)
    assert damage(onnx) is not None
    # engine list and engine clean --dry-run see it
    capsys.readouterr()
    assert main(["engine", "list", "--engine-dir", str(engines)]) == 0
    listed = capsys.readouterr().out
    (line,) = [ln for ln in listed.splitlines() if onnx.name in ln]
    assert line.startswith("damaged ") and reason in line
    assert main(["engine", "clean", "--dry-run", "--engine-dir", str(engines)]) == 0
    assert f"would delete {onnx.name}" in capsys.readouterr().out
    code, err = _run(job, engines, tmp_path / "out.mp4", capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "is damaged" in line]
    assert len(warnings) == 1 and onnx.name in warnings[0] and reason in warnings[0], err
    assert damage(_export(engines)) is None and (tmp_path / "out.mp4").is_file()
    if kind == "truncated":
        code, err = _run(job, engines, tmp_path / "out.mp4", capsys)
        assert code == 0 and "damaged" not in err  # healed: the next run says nothing


def test_engine_clean_deletes_damaged_and_orphaned_files(exported, tmp_path, capsys):
    engines = tmp_path / "engines"
    shutil.copytree(exported, engines)
    onnx = _export(engines)
    onnx.write_bytes(b"garbage")
    orphan = engines / "gone.onnx.sha256"
    orphan.write_text('{"sha256": "00", "bytes": 1}')
    problems = {p.name: why for p, why in cache_problems(engines)}
    assert set(problems) == {onnx.name, orphan.name} and "orphaned" in problems[orphan.name]
    assert main(["engine", "clean", "--engine-dir", str(engines)]) == 0
    out = capsys.readouterr().out
    assert f"deleted {onnx.name}" in out and f"deleted {orphan.name}" in out
    assert not onnx.exists() and not hash_path(onnx).exists() and not orphan.exists()


def _immutable(folder: Path, on: bool) -> None:
    if os.geteuid() == 0:  # root ignores mode bits; an immutable folder stops root too
        subprocess.run(["chattr", "+i" if on else "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555 if on else 0o755)


def test_a_read_only_folder_holding_a_sound_export_is_used(job, exported, tmp_path, capsys):
    """Defect 5: exit 2 before; now the export is used as it is. Without the export the
    refusal says where to point --engine-dir (exit 2)."""
    if os.geteuid() == 0 and shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a folder read-only")
    engines, empty = tmp_path / "engines", tmp_path / "empty"
    shutil.copytree(exported, engines)
    for lock in engines.glob("*.lock"):
        lock.unlink()
    empty.mkdir()
    before = sorted(p.name for p in engines.iterdir())
    _immutable(engines, True)
    _immutable(empty, True)
    try:
        code, err = _run(job, engines, tmp_path / "out.mp4", capsys)
        assert code == 0, err
        assert sorted(p.name for p in engines.iterdir()) == before
        code, err = _run(job, empty, tmp_path / "out2.mp4", capsys)
        assert code == 2
        assert f"the engine cache folder {empty} is not writable" in err and \
            "--engine-dir" in err and err.count("\n") == 1
    finally:
        _immutable(engines, False)
        _immutable(empty, False)


def test_artifact_helper_round_trip_and_every_damage(tmp_path, caplog):
    path = write_artifact(tmp_path / "verdict.json", b'{"ok": true}')
    assert read_verified(path) == b'{"ok": true}' and damage(path) is None
    write_artifact(tmp_path / "made.bin", lambda tmp: tmp.write_bytes(b"x" * 10))
    assert damage(tmp_path / "made.bin") is None
    assert damage(tmp_path / "absent") == "missing" and not check_artifact(tmp_path / "absent")
    for spoil, (_, why) in zip(DAMAGES.values(), DAMAGES.values()):
        write_artifact(path, b'{"ok": true}')
        spoil[0](path)
        assert why in damage(path)
        caplog.clear()
        assert read_verified(path) is None
        assert len(caplog.records) == 1 and path.name in caplog.records[0].getMessage()
        assert not path.exists() and not hash_path(path).exists()
    assert not list(tmp_path.glob(".*"))  # no temporary file left
