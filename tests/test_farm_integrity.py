"""Segments that prove what they are (issue 37, defects 1 and 2): a segment rendered from
another clip with the same size, rate and timestamps, and one whose bytes were overwritten, are
refused by ``stitch`` (re-encode and packet copy) naming the segment and the frame; ``--workers``
renders a chunk whose segment fails its check once more and succeeds.

Clips A and B are 24 frames of 96×64 H.264 at 24 fps with identical timestamps and different
pictures; segments are real ``gpen-video … --segment`` renders (identity restorer).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gpen_video.cli import main
from tests.farm_helpers import CorruptSegment, corrupt_packet, render_args
from tests.media_helpers import AudioSpec, VideoSpec, make_video
from tests.pipeline_helpers import read_frames

SPANS = ["0-7", "8-15", "16-23"]


def _name(span: str) -> str:
    a, b = map(int, span.split("-"))
    return f"seg-{a:06d}-{b:06d}.mkv"


def _render(testdata: Path, clip: Path, folder: Path, span: str, *extra: str) -> Path:
    seg = folder / _name(span)
    assert main([str(clip), str(seg), "--frames", span, "--overlap", "auto", "--segment",
                 *render_args(testdata), *extra]) == 0
    return seg


@pytest.fixture(scope="module")
def clips(testdata, tmp_path_factory):
    """Clips A and B, A's three segments, B's middle one, and A's middle one rendered with
    other pixel options (--strength 0.5)."""
    root = tmp_path_factory.mktemp("integrity")
    a = make_video(root / "a.mov", VideoSpec(n=24, audio=[AudioSpec(seconds=1.2)]))
    b = make_video(root / "b.mov", VideoSpec(n=24, content="smooth",
                                             audio=[AudioSpec(seconds=1.2)]))
    segs_a, segs_b, other = root / "a", root / "b", root / "other"
    for folder in (segs_a, segs_b, other):
        folder.mkdir()
    for span in SPANS:
        _render(testdata, a, segs_a, span)
    _render(testdata, b, segs_b, "8-15")
    _render(testdata, a, other, "8-15", "--strength", "0.5")
    return {"a": a, "b": b, "segs_a": segs_a, "segs_b": segs_b, "other": other, "root": root}


def _folder_with(clips, tmp_path: Path, middle: Path) -> Path:
    """A's first and last segment (with manifests) and ``middle`` (with its manifest)."""
    folder = tmp_path / "segs"
    folder.mkdir()
    for span in ("0-7", "16-23"):
        for suffix in ("", ".json"):
            shutil.copy(clips["segs_a"] / (_name(span) + suffix), folder)
    for suffix in ("", ".json"):
        if Path(str(middle) + suffix).exists():
            shutil.copy(str(middle) + suffix, folder / (_name("8-15") + suffix))
    return folder


def _stitch(clips, folder: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["stitch", str(folder), "--audio-from", str(clips["a"]), "--frames", "0-23",
                 str(out), "-q", *extra])
    return code, capsys.readouterr().err


def test_manifest_records_source_options_and_every_frame(clips):
    record = json.loads((clips["segs_a"] / (_name("8-15") + ".json")).read_text())
    assert record["frames"] == {"first": 8, "last": 15}
    assert record["source"]["name"] == "a.mov" and len(record["source"]["sha256"]) == 64
    assert [i for i, _ in record["pictures"]] == list(range(8, 16))
    assert len(record["packets"]) == 8 and record["picture_format"] == "bgr0"
    assert record["options"]["blend"]["strength"] == 1.0


def test_stitch_refuses_a_segment_rendered_from_another_clip(clips, tmp_path, capsys):
    """Defect 1: B's frames 8-15 (same size, rate and timestamps) among A's segments."""
    folder = _folder_with(clips, tmp_path, clips["segs_b"] / _name("8-15"))
    for out, extra in ((tmp_path / "o.mp4", ["--reencode"]), (tmp_path / "o.mkv", [])):
        code, err = _stitch(clips, folder, out, capsys, *extra)
        assert code == 2, err
        assert "segment seg-000008-000015.mkv was rendered from another clip (b.mov" in err
        assert err.count("\n") == 1 and not out.exists()
    # the check is what refuses it: without it the foreign frames go through (the old defect)
    code, err = _stitch(clips, folder, tmp_path / "trusting.mkv", capsys, "--verify", "none")
    assert code == 0, err
    frames = read_frames(tmp_path / "trusting.mkv")
    foreign = read_frames(clips["segs_b"] / _name("8-15"))
    assert np.array_equal(frames[8].image, foreign[0].image)


def test_stitch_refuses_a_damaged_segment_naming_the_frame(clips, tmp_path, capsys):
    """Defect 2: bytes overwritten inside segment 8-15 (its 3rd packet: frame 10)."""
    folder = _folder_with(clips, tmp_path, clips["segs_a"] / _name("8-15"))
    corrupt_packet(folder / _name("8-15"), 2, size=200)
    for out, extra in ((tmp_path / "o.mp4", ["--reencode"]), (tmp_path / "o.mkv", [])):
        code, err = _stitch(clips, folder, out, capsys, *extra)
        assert code == 2, err
        assert "segment seg-000008-000015.mkv is damaged: frame 10 does not match" in err
        assert not out.exists()
    code, err = _stitch(clips, folder, tmp_path / "trusting.mkv", capsys, "--verify", "none")
    assert code == 0, err  # what happened before: exit 0, damaged frame delivered


def test_frames_level_compares_the_decoded_pictures(clips, tmp_path, capsys):
    """A manifest whose picture checksum of frame 12 differs (the packets agree): ``packets``
    passes, ``frames`` (the default when re-encoding) refuses, naming the frame."""
    folder = _folder_with(clips, tmp_path, clips["segs_a"] / _name("8-15"))
    path = folder / (_name("8-15") + ".json")
    record = json.loads(path.read_text())
    record["pictures"][4][1] = "0" * 32
    path.write_text(json.dumps(record))
    code, err = _stitch(clips, folder, tmp_path / "p.mp4", capsys, "--reencode", "--verify",
                        "packets")
    assert code == 0, err
    code, err = _stitch(clips, folder, tmp_path / "f.mp4", capsys, "--reencode")
    assert code == 2 and "seg-000008-000015.mkv is damaged: frame 12 decodes to another " \
        "picture" in err
    code, err = _stitch(clips, folder, tmp_path / "f.mkv", capsys, "--verify", "frames")
    assert code == 2 and "frame 12" in err


def test_stitch_refuses_a_segment_of_another_job_or_without_manifest(clips, tmp_path, capsys):
    folder = _folder_with(clips, tmp_path, clips["other"] / _name("8-15"))
    code, err = _stitch(clips, folder, tmp_path / "o.mkv", capsys)
    assert code == 2 and "seg-000008-000015.mkv was rendered with other options than " \
        "seg-000000-000007.mkv" in err
    (folder / (_name("8-15") + ".json")).unlink()
    code, err = _stitch(clips, folder, tmp_path / "o.mkv", capsys)
    assert code == 2 and "seg-000008-000015.mkv has no manifest" in err


def _run_options(clips, testdata: Path, out: Path):
    from gpen_video.cli import build_parser
    from gpen_video.commands.run import options_from_args

    parser, _ = build_parser("run")
    return options_from_args(parser.parse_args([str(clips["a"]), str(out),
                                                *render_args(testdata), "--codec", "ffv1",
                                                "--pix-fmt", "bgr0"]))


def test_workers_render_a_chunk_that_fails_its_check_again(clips, testdata, tmp_path):
    """``--workers 2``: chunk 1's segment is damaged once it is written (first attempt only):
    the stitch's check finds it, the chunk is rendered again, and the output is the clip's
    frames (no faces in it). (Damaged on every attempt: the slow test below.)"""
    from gpen_video.farm.local import run_workers
    from gpen_video.options import WorkersOptions

    out = tmp_path / "w.mkv"
    report = run_workers(_run_options(clips, testdata, out), WorkersOptions(count=2, threads=1),
                         chunk_hook=CorruptSegment(chunk=1, frame=1))
    assert report.rerendered == (1,) and report.chunks == 2
    got, source = read_frames(out), read_frames(clips["a"])
    assert len(got) == 24
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, source))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.mkv"]


@pytest.mark.slow
def test_workers_fail_naming_a_segment_damaged_on_every_attempt(clips, testdata, tmp_path):
    """(Slow: two rounds of worker processes.) Damaged again after its re-render, the chunk
    ends the job: exit 2's error naming the segment and the frame, nothing left behind."""
    from gpen_video.farm.local import run_workers
    from gpen_video.farm.manifest import SegmentError
    from gpen_video.options import WorkersOptions

    bad = tmp_path / "bad.mkv"
    with pytest.raises(SegmentError, match=r"seg-000012-000023\.mkv is damaged: frame 13"):
        run_workers(_run_options(clips, testdata, bad), WorkersOptions(count=2, threads=1),
                    chunk_hook=CorruptSegment(chunk=1, frame=1, attempts=2))
    assert list(tmp_path.iterdir()) == []
