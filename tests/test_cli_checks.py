"""Mistakes reported before any model loads, all at once, with what to do next.

The "before any model loads" tests run ``gpen_video.cli.main`` in a fresh interpreter and then
look at which modules were imported: torch, ONNX Runtime and facexlib must not be (a wall-clock
bound would fail on a busy machine; this cannot).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpen_video.cli import main
from tests.exit_helpers import DETECTOR, env
from tests.pipeline_helpers import write_clip

HEAVY = ("torch", "onnxruntime", "facexlib", "gpen_video.models.load", "gpen_video.backends")

_PROBE = """
import json, sys, time
from gpen_video.cli import main
t = time.perf_counter()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t,
                  "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def _probe(args: list[str], **extra_env: str) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], env=env(**extra_env),
                          capture_output=True, text=True, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    import numpy as np

    folder = tmp_path_factory.mktemp("clip")
    return write_clip(folder / "in.mov", [np.full((64, 96, 3), 90, np.uint8)] * 2)


def _cases(tmp_path: Path, clip: Path) -> dict[str, tuple[list[str], str]]:
    exists = tmp_path / "exists.mp4"
    exists.write_bytes(b"old")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    return {
        "exists": ([clip, exists], "already exists"),
        "no extension": ([clip, tmp_path / "out"], "unknown file type"),
        "unknown extension": ([clip, tmp_path / "out.xyz"], "xyz"),
        "missing folder": ([clip, tmp_path / "no" / "out.mp4"], "does not exist"),
        "output is a folder": ([clip, tmp_path], "folder"),
        "output is the input": ([clip, clip], "is the input"),
        "missing input": ([tmp_path / "nothing.mp4", tmp_path / "o.mp4"], "does not exist"),
        "text input": ([text, tmp_path / "o.mp4"], "notes.mp4"),
    }


def test_input_and_output_errors_come_before_any_model_loads(tmp_path, clip):
    for name, (args, word) in _cases(tmp_path, clip).items():
        result, err = _probe([*args, "--device", "cpu"])
        assert result["code"] == 2, (name, err)
        assert result["loaded"] == [], (name, result)
        assert word in err and err.count("\n") == 1, (name, err)


def test_every_missing_weights_file_in_one_message(tmp_path, clip):
    home = tmp_path / "home"
    home.mkdir()
    result, err = _probe([clip, tmp_path / "o.mp4", "--no-download", "--device", "cpu"],
                         GPEN_VIDEO_HOME=str(home))
    assert result["code"] == 2 and result["loaded"] == []
    assert err.count("\n") == 1
    for word in ("GPEN-BFR-512.pth", "detection_Resnet50_Final.pth", "--model",
                 "--detector-weights", "gpen-video download GPEN-BFR-512 retinaface-resnet50"):
        assert word in err, (word, err)
    assert not list(home.rglob("*"))


def test_missing_explicit_files_are_named_together(tmp_path, clip):
    result, err = _probe([clip, tmp_path / "o.mp4", "--model", tmp_path / "mine.pth",
                          "--detector-weights", tmp_path / "faces.pth", "--device", "cpu"])
    assert result["code"] == 2 and result["loaded"] == []
    assert "mine.pth (--model) does not exist" in err
    assert "faces.pth (--detector-weights) does not exist" in err


def test_bench_checks_the_weights_before_it_synthesises_or_exports(tmp_path):
    """``bench`` with missing detector weights stops at once: no clip synthesised, no network
    built or exported, every missing file named (it used to synthesise and export first)."""
    work = tmp_path / "work"
    home = tmp_path / "home"
    home.mkdir()
    result, err = _probe(["bench", "--model", "GPEN-BFR-256", "--random-weights", "--backend",
                          "onnxruntime", "--device", "cpu", "--scene", "320x240:1",
                          "--length", "4", "--workdir", work, "--detector-weights",
                          tmp_path / "faces.pth"], GPEN_VIDEO_HOME=str(home))
    assert result["code"] == 2, err
    assert "faces.pth (--detector-weights) does not exist" in err and err.count("\n") == 1
    assert result["loaded"] == []  # neither torch nor onnxruntime: nothing heavy started
    assert not work.exists() or not list(work.rglob("*"))  # no scene synthesised
    assert not list(home.rglob("*.onnx"))


_BROKEN_TORCHVISION = """
import sys
class _Mismatched:  # what a CPU torch beside a CUDA torchvision raises on import
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
sys.meta_path.insert(0, _Mismatched())
"""


def test_a_torch_torchvision_mismatch_is_named_with_the_fix_before_loading(testdata, tmp_path,
                                                                           clip):
    out = tmp_path / "out"
    out.mkdir()
    args = [clip, out / "o.mp4", "--model", "GPEN-BFR-256", "--random-weights", "--backend",
            "onnxruntime", "--device", "cpu", "--detector-weights",
            testdata / "weights" / DETECTOR, "-v"]
    proc = subprocess.run([sys.executable, "-c", _BROKEN_TORCHVISION + _PROBE, *map(str, args)],
                          env=env(), capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    err = proc.stderr
    assert result["code"] == 2, err
    line = err.strip().splitlines()[-1]
    assert "torchvision" in line and "torchvision::nms does not exist" in line
    assert "--index-url" in line and "internal error" not in err
    assert "loading the models" not in err  # before any model is built or exported
    assert "gpen_video.backends" not in result["loaded"]
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ the detector's network


def test_detector_network_is_inferred_from_the_weights_file(testdata, tmp_path):
    from gpen_video.faces import FaceDetector
    from gpen_video.options import DetectOptions

    weights = testdata / "weights" / DETECTOR
    renamed = shutil.copy(weights, tmp_path / "faces.pth")  # known only by checksum
    for path in (weights, renamed):
        detector = FaceDetector(DetectOptions(network="auto", weights=path, device="cpu"))
        assert detector.network == "mobile0.25"


def test_wrong_detector_network_names_the_right_flag(testdata):
    from gpen_video.errors import WeightsError
    from gpen_video.faces.detect import load_retinaface

    with pytest.raises(WeightsError) as exc:
        load_retinaface("resnet50", testdata / "weights" / DETECTOR, "cpu")
    assert "--detector mobile0.25" in str(exc.value) and "leave --detector out" in str(exc.value)


def test_unsafe_detector_file_is_refused_without_unsafe_advice(tmp_path):
    import argparse

    import torch

    from gpen_video.errors import WeightsError
    from gpen_video.faces.detect import load_retinaface

    path = tmp_path / "pickled.pth"
    torch.save({"body": argparse.Namespace(a=1)}, path)  # a Python object, not a tensor
    with pytest.raises(WeightsError) as exc:
        load_retinaface(None, path, "cpu")
    text = str(exc.value)
    assert "weights_only=False" not in text and "trust" not in text
    assert "never loaded for safety" in text and "\n" not in text


# ------------------------------------------------------------------ commands and options


def test_no_arguments_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "gpen_video"], env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    for name in ("download", "export", "bench", "engine", "stitch", "farm"):
        assert f"  {name} " in proc.stderr


@pytest.mark.parametrize("typo, command", [("downlaod", "download"), ("stich", "stitch"),
                                           ("farn", "farm"), ("bnech", "bench")])
def test_command_typo_suggests_the_command(capsys, typo, command):
    assert main([typo, "x"]) == 2
    err = capsys.readouterr().err
    assert f"did you mean `gpen-video {command}`" in err and err.count("\n") == 1


def test_existing_file_named_like_a_command_is_an_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("farn").write_text("not a video")
    assert main(["farn", "out.mp4"]) == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and "farn" in err


@pytest.mark.parametrize("argv, hint", [(["a.mp4", "b.mp4", "--strenght", "0.5"], "--strength"),
                                        (["bench", "--devise", "cpu"], "--device")])
def test_option_typo_suggests_the_option(capsys, argv, hint):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert f"did you mean {hint}?" in capsys.readouterr().err
