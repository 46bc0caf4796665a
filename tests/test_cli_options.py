"""Command-line flags for options the library already had: --detect-size, --detect-every,
--on-damage, --max-batch, --engine-dir, --geometry (through ``gpen_video.cli.main`` where the
effect can be seen in a short run, else through the options builder)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gpen_video.cli import build_parser, main
from gpen_video.commands.run import options_from_args
from gpen_video.errors import EXIT_USAGE, UsageError
from gpen_video.media.paths import TEMP_TAG
from tests.media_helpers import VideoSpec, damaged_clip, make_video
from tests.pipeline_helpers import read_frames

def _detector_args(testdata: Path) -> list[str]:
    return ["--detector", "mobile0.25", "--detector-weights",
            str(testdata / "weights" / "detection_mobilenet0.25_Final.pth"), "--device", "cpu",
            "--progress", "none"]


def _options(*flags: str):
    parser, _ = build_parser("run")
    return options_from_args(parser.parse_args(["in.mp4", "out.mp4", *flags]))


def test_flags_reach_the_options():
    default = _options()
    assert default.detect.max_side == 640 and default.detect.every == 0  # 0: the mode's default
    assert default.detect.mode == "tracked" and default.detect.scan_min_iod == 24.0
    assert default.on_damage == "conceal" and default.blend.geometry == "auto"
    assert default.restore.max_batch is None and default.restore.engine_dir is None
    got = _options("--detect-size", "0", "--detect-every", "3", "--on-damage", "fail",
                   "--max-batch", "16", "--engine-dir", "eng", "--geometry", "torch")
    assert got.detect.max_side == 0 and got.detect.every == 3
    assert got.on_damage == "fail" and got.blend.geometry == "torch"
    assert got.restore.max_batch == 16 and got.restore.engine_dir == Path("eng")
    assert _options("--detect-size", "1400").detect.max_side == 1400
    full = _options("--detect", "full", "--min-face", "16")
    assert full.detect.mode == "full" and full.detect.scan_min_iod == 16.0


@pytest.mark.parametrize("flags, word", [(["--detect-every", "-1"], "--detect-every"),
                                         (["--min-face", "-2"], "--min-face"),
                                         (["--max-batch", "0"], "--max-batch"),
                                         (["--detect-size", "-5"], "--detect-size")])
def test_bad_values_are_usage_errors(flags, word, capsys):
    with pytest.raises(UsageError, match=word):
        _options(*flags)
    assert main(["in.mp4", "out.mp4", *flags]) == EXIT_USAGE
    assert word in capsys.readouterr().err


def test_help_says_what_the_detect_size_costs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "17 of 29 faces at 640" in text and "--on-damage {conceal,fail}" in text


def test_on_damage_fail_exits_2_and_leaves_nothing(testdata, tmp_path, capsys):
    _, bad = damaged_clip(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "restored.mp4"
    code = main([str(bad), str(out), "--backend", "identity", "--on-damage", "fail",
                 *_detector_args(testdata)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE == 2
    assert "damaged" in err and err.count("\n") == 1
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


def test_on_damage_conceal_is_the_default_and_keeps_every_frame(testdata, tmp_path, caplog):
    src, bad = damaged_clip(tmp_path)
    out = tmp_path / "restored.mp4"
    with caplog.at_level(logging.WARNING, logger="gpen_video.media"):
        code = main([str(bad), str(out), "--backend", "identity", *_detector_args(testdata)])
    assert code == 0
    assert any("could not be decoded" in r.getMessage() or "concealing" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    got = read_frames(out)
    assert [f.pts * f.time_base for f in got] == [f.pts * f.time_base for f in read_frames(src)]
    assert len(got) == 36 and not [p for p in tmp_path.iterdir() if TEMP_TAG in p.name]


@pytest.mark.parametrize("geometry, line", [("torch", "geometry: torch on cpu"),
                                            ("cpu", "geometry: OpenCV on the CPU")])
def test_geometry_flag_picks_the_path(testdata, tmp_path, caplog, geometry, line):
    clip = make_video(tmp_path / "in.mp4", VideoSpec(n=3))
    with caplog.at_level(logging.INFO, logger="gpen_video.pipeline"):
        code = main([str(clip), str(tmp_path / "out.mp4"), "--backend", "identity",
                     "--geometry", geometry, *_detector_args(testdata)])
    assert code == 0
    assert [r.getMessage() for r in caplog.records if "geometry:" in r.getMessage()] == [
        line + f" (--geometry {geometry})"]


def test_engine_dir_and_max_batch_reach_the_backend(testdata, tmp_path):
    """onnxruntime exports its ONNX into --engine-dir; --max-batch bounds its batches."""
    pytest.importorskip("onnxruntime")
    import torch

    from gpen_video.backends import create_restorer
    from tests.engine_helpers import small_gpen

    model = tmp_path / "small64.pth"
    torch.save(small_gpen().state_dict(), model)
    engines = tmp_path / "engines"
    flags = ["--model", str(model), "--backend", "onnxruntime", "--engine-dir", str(engines),
             "--max-batch", "2", "--batch", "2"]
    clip = make_video(tmp_path / "in.mp4", VideoSpec(n=3))
    assert main([str(clip), str(tmp_path / "out.mp4"), *flags, *_detector_args(testdata)]) == 0
    assert [p.name for p in engines.glob("*.onnx")] == [
        p.name for p in engines.glob("small64-64px-*.onnx")] != []
    options = _options(*flags, "--device", "cpu")
    assert create_restorer(options.model, options.restore).spec.max_batch == 2
