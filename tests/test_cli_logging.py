"""The CLI's logging: warnings by default, info with -v, debug with -vv, errors only with -q
(the library never configures logging; ``main`` does, for its own duration)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gpen_video.cli import main
from tests.media_helpers import VideoSpec, damaged_clip, make_video
from tests.pipeline_helpers import save_small_gpen


def _args(testdata: Path, clip: Path, out: Path) -> list[str]:
    return [str(clip), str(out), "--detector", "mobile0.25", "--detector-weights",
            str(testdata / "weights" / "detection_mobilenet0.25_Final.pth"), "--device", "cpu",
            "--progress", "none"]


def test_verbose_prints_the_backend_auto_choice(testdata, tmp_path, capsys):
    clip = make_video(tmp_path / "in.mp4", VideoSpec(n=3))
    model = save_small_gpen(tmp_path / "gpen128.pth")
    base = _args(testdata, clip, tmp_path / "out.mp4") + ["--model", str(model), "-y"]
    # --compile off: auto then picks onnxruntime (no one-minute Inductor build in this test)
    assert main([*base, "-v", "--backend", "auto", "--compile", "off"]) == 0
    err = capsys.readouterr().err
    assert "gpen-video: backend auto: onnxruntime on cpu (faster than torch on CPUs; --device cpu" \
        in err and "compiled torch skipped: --compile off" in err
    assert "gpen-video: geometry: OpenCV on the CPU" in err
    assert main([*base, "--backend", "auto", "--compile", "off"]) == 0  # default: warnings only
    assert "backend auto" not in capsys.readouterr().err
    assert not logging.getLogger("gpen_video").handlers  # main leaves logging as it found it


@pytest.mark.parametrize("quiet", [False, True])
def test_damage_warning_by_default_and_not_with_quiet(testdata, tmp_path, capsys, quiet):
    _, bad = damaged_clip(tmp_path)
    args = _args(testdata, bad, tmp_path / "out.mp4") + ["--backend", "identity"]
    assert main([*args, "-q"] if quiet else args) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "damaged" in line]
    if quiet:
        assert lines == []
    else:
        assert lines and all(line.startswith("gpen-video: warning: bad.mp4: ") for line in lines)


def test_engine_build_notice_shows_by_default(tmp_path, capsys, monkeypatch):
    """The TensorRT one-time build notice (engine.build's own function; no TensorRT here to
    build with) reaches stderr without -v; -vv adds debug records."""
    import gpen_video.commands.run as run_command
    from gpen_video.engine import build

    def fake_execute(args, env):
        build._notice("building the TensorRT fp16 engine for gpen: a one-time cost")
        logging.getLogger("gpen_video.pipeline").debug("a debug record")
        return 0

    monkeypatch.setattr(run_command, "execute", fake_execute)
    assert main([str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4")]) == 0
    err = capsys.readouterr().err
    assert err == ("gpen-video: warning: building the TensorRT fp16 engine for gpen: a one-time "
                   "cost\n")
    assert main([str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "-vv"]) == 0
    assert "gpen-video: debug: gpen_video.pipeline: a debug record" in capsys.readouterr().err


def test_log_lines_do_not_break_the_progress_bar(capsys):
    """A warning logged while the tqdm bar is drawn gets a line of its own (the bar's line is
    cleared first and the bar drawn again below), instead of being glued to the bar's text."""
    import logging

    from gpen_video.cli import configure_logging

    undo = configure_logging(logging.WARNING)
    try:
        from gpen_video.progress import Progress  # the run's and the farm's

        progress = Progress("bar", 10)
        progress.update(3)
        logging.getLogger("gpen_video.test").warning("a line while the bar is drawn")
        progress.update(6)
        progress.close(None)
    finally:
        undo()
    err = capsys.readouterr().err
    before, line, after = err.partition("gpen-video: warning: a line while the bar is drawn\n")
    assert line, err
    assert before.endswith("\r")  # the bar's line cleared, not appended to
    assert "6/10" in after  # the bar goes on below the message
    handlers = logging.getLogger("gpen_video").handlers
    assert not any("Tqdm" in type(h).__name__ for h in handlers)  # redirect undone at close
