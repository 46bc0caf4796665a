"""The command line: fast help, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gpen_video.cli import main
from gpen_video.errors import EXIT_TRANSIENT, EXIT_USAGE


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t=time.perf_counter();"
        "from gpen_video.cli import main\n"
        "try:\n main(['--help'])\nexcept SystemExit:\n pass\n"
        "heavy=[m for m in ('torch','av','cv2','facexlib','onnxruntime') if m in sys.modules]\n"
        "print(heavy, time.perf_counter()-t, file=sys.stderr)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert "restore the faces" in proc.stdout
    assert proc.stderr.startswith("[]"), proc.stderr
    assert elapsed < 2.0


def test_every_command_has_help(capsys):
    from gpen_video.cli import COMMANDS

    for name in COMMANDS:
        try:
            importlib_ok = __import__(COMMANDS[name][0], fromlist=["configure"])
        except ModuleNotFoundError:
            continue  # command not built yet
        assert hasattr(importlib_ok, "configure")
        with pytest.raises(SystemExit) as stop:
            main([name, "--help"] if name != "run" else ["--help"])
        assert stop.value.code == 0


def test_bad_frames_is_a_usage_error(capsys, tmp_path):
    code = main([str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--frames", "9-3"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--frames" in err


def test_offline_download_is_one_line_and_transient(capsys, tmp_path, monkeypatch):
    # Point the registry at an address that cannot resolve, so the test never needs a network.
    from gpen_video.models import weights

    spec = weights.REGISTRY["GPEN-BFR-256"]
    broken = weights.WeightsSpec(**{**spec.__dict__, "url": "http://gpen-video.invalid/x.pth"})
    monkeypatch.setitem(weights.REGISTRY, "GPEN-BFR-256", broken)
    code = main(["download", "GPEN-BFR-256", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_TRANSIENT
    assert err.count("\n") == 1
    assert "http://gpen-video.invalid/x.pth" in err and "--model PATH" in err
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
