"""The faces file (``gpen-video analyse`` → ``--faces-from``), the contact sheet and track
selection (issue 35): renders that read the file are the detecting run's bit for bit, chunks
read the single run's alignment, skipped faces keep the source's pixels, bad files are refused
with their line and field.

Runs use the real MobileNet detector and the tests' small random-weight GPEN (128 px, torch,
CPU): plumbing, not restoration.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gpen_video.faces.faces_file import FacesFileError, open_faces
from gpen_video.options import BlendOptions, DetectOptions
from tests.faces_file_helpers import LATE, frames_of, render, two_faces_clip
from tests.pipeline_helpers import run_options, save_small_gpen
from tests.workers_helpers import footprint


@pytest.fixture(scope="module")
def work(tmp_path_factory, testdata):
    """The clip, the small GPEN, the detector, an analysis of the whole clip, and a detecting
    single run with its pasted faces (shared by the tests below)."""
    from gpen_video.faces.detect import FaceDetector
    from gpen_video.pipeline.analysis import analyse

    folder = tmp_path_factory.mktemp("faces_file")
    clip = two_faces_clip(testdata, folder / "two.mov")
    model = save_small_gpen(folder / "gpen128.pth")
    base = run_options(testdata, clip, folder / "single.mkv", model=model, codec="ffv1")
    detector = FaceDetector(base.detect)
    faces = folder / "two.faces"
    report = analyse(replace(base, output=faces), faces, sheet_path=folder / "two.png",
                     detector=detector, serial=True)
    single = render(base, detector)
    return {"folder": folder, "clip": clip, "model": model, "base": base, "faces": faces,
            "detector": detector, "single": single, "report": report, "testdata": testdata}


def _no_detector(monkeypatch) -> None:
    """A render that must not build a detector fails if it tries."""
    import gpen_video.faces.detect as detect

    def refuse(*args, **kw):
        raise AssertionError("a detector was built")

    monkeypatch.setattr(detect.FaceDetector, "__init__", refuse)


# -- done-when 1: bit-identical renders ---------------------------------------------------------

def test_a_render_from_the_faces_file_is_the_detecting_run_bit_for_bit(work, monkeypatch):
    _no_detector(monkeypatch)
    out = work["folder"] / "from_file.mkv"
    seen = render(replace(work["base"], output=out, faces_from=work["faces"]))
    single, read = frames_of(work["base"].output), frames_of(out)
    assert len(single) == len(read) == 36
    assert all(np.array_equal(a, b) for a, b in zip(single, read))
    assert seen.keys() == work["single"].keys()
    for i, faces in work["single"].items():
        assert [f.track_id for f in faces] == [f.track_id for f in seen[i]]
        assert all(np.array_equal(a.matrix, b.matrix) and a.alpha == b.alpha
                   for a, b in zip(faces, seen[i]))
    # both faces restored: the test is not about an empty clip
    assert {f.track_id for fs in seen.values() for f in fs} == {1, 2}


def test_analysis_is_deterministic_and_ids_follow_first_appearance(work, tmp_path):
    from gpen_video.pipeline.analysis import analyse

    again = tmp_path / "again.faces"
    analyse(replace(work["base"], output=again), again, detector=work["detector"], serial=True)
    assert again.read_bytes() == work["faces"].read_bytes()  # gzip without a timestamp
    spans = {t.track_id: t for t in open_faces(again).tracks}
    assert sorted(spans) == [1, 2]
    assert spans[1].first == 0 and spans[1].last == 35
    assert LATE <= spans[2].first <= LATE + 12 and spans[2].last == 35  # scans: every 12


def test_every_number_round_trips_exactly(tmp_path):
    """float64 written as JSON reads back to the same bits, extremes included."""
    from gpen_video.faces.faces_file import FacesWriter, tracked_face
    from gpen_video.faces.types import SimilarityParams, TrackedFace

    rng = np.random.default_rng(3)
    values = [np.nextafter(1.0, 2.0), 1e-300, 5e-324, 123456789.123456789, -0.0, np.pi]
    header = {"clip": {}, "range": {"start": 0, "end": 1}, "options": {}}
    writer = FacesWriter(tmp_path / "x.faces", header)
    faces = []
    for k, v in enumerate(values[:2]):
        p = SimilarityParams(float(v * 100 + rng.random()), float(rng.random() * 1e3),
                             float(rng.random() * 400 + 1e-9), float(values[2 + k]))
        # face 1: the detector's float32 outputs (written as float32); face 2: float64 ones
        kind = np.float32 if k == 0 else np.float64
        faces.append(TrackedFace(k + 1, k, np.zeros((2, 3)), 128, p,
                                 (rng.random((5, 2)) * 1e3).astype(kind), True,
                                 float(kind(rng.random())), True, False, False, 3, None,
                                 float(values[0] / 2), box=rng.random(4).astype(kind)))
    writer.write(0, False, faces[:1])
    writer.write(1, True, faces[1:])
    writer.close()
    records = list(open_faces(tmp_path / "x.faces").frames())
    assert {"sf", "lmf", "boxf"} <= records[0].faces[0].keys()
    assert {"s", "lm", "box"} <= records[1].faces[0].keys()
    for record, face in zip(records, faces):
        back = tracked_face(record.faces[0], face.frame_index, 128)
        for a, b in ((back.params, face.params),):
            assert [np.float64(x).tobytes() for x in (a.cx, a.cy, a.width, a.angle)] == \
                [np.float64(x).tobytes() for x in (b.cx, b.cy, b.width, b.angle)]
        assert back.landmarks.tobytes() == face.landmarks.tobytes()
        assert back.box.tobytes() == face.box.tobytes()
        assert back.alpha_hint == face.alpha_hint and back.score == face.score
    assert records[1].cut and not records[0].cut


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keep_synthetic_1", "liveportrait_d0", "liveportrait_d11",
                                  "liveportrait_d13", "liveportrait_d18", "liveportrait_s18"])
def test_the_six_real_clips_render_the_same_from_the_file(testdata, tmp_path, name, work):
    """Done-when 1: default options (tracked detection), the small GPEN; every frame equal."""
    from gpen_video.pipeline.analysis import analyse

    clip = testdata / "videos" / f"{name}.mp4"
    base = run_options(testdata, clip, tmp_path / "detect.mkv", model=work["model"],
                       codec="ffv1")
    faces = tmp_path / "clip.faces"
    analyse(replace(base, output=faces), faces, detector=work["detector"], serial=True)
    render(base, work["detector"])
    render(replace(base, output=tmp_path / "read.mkv", faces_from=faces))
    a, b = frames_of(base.output), frames_of(tmp_path / "read.mkv")
    assert len(a) == len(b) > 0
    assert open_faces(faces).end["faces"] > 0
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


# -- chunks --------------------------------------------------------------------------------------

def _chunks(work, options, tag: str, borders=(12, 24)):
    """Render the clip as three chunks (the margins of --workers) in this process; the pasted
    faces of every chunk's output frames and the chunks' frames in order."""
    from gpen_video.farm.warmup import chunk_margins

    margins = chunk_margins(options, 25.0)
    spans = [(0, borders[0] - 1), (borders[0], borders[1] - 1), (borders[1], 35)]
    seen: dict[int, list] = {}
    frames = []
    for k, (a, b) in enumerate(spans):
        rng = margins.range(a, b)
        if k == 2:
            rng = replace(rng, tail=0)
        out = work["folder"] / f"chunk{k}-{tag}.mkv"
        seen.update(render(replace(options, output=out, range=rng), work["detector"]))
        frames += frames_of(out)
    return seen, frames


def test_three_chunks_read_exactly_the_single_runs_alignment(work):
    """A track crosses both borders (face 1), another the second (face 2): every chunk's
    matrices are the single (detecting) run's bit for bit; with --temporal off (nothing else
    carries state across a border) every frame is the single run's. (With the temporal filter
    on, the chunks' frames: benchmarks/faces_file.py chunks.)"""
    options = replace(work["base"], faces_from=work["faces"])
    off = replace(options, temporal=replace(options.temporal, mode="off"))
    seen, chunked = _chunks(work, off, "file-off")
    assert seen.keys() == work["single"].keys()
    for i, faces in work["single"].items():
        assert [(f.track_id, f.matrix.tobytes(), f.alpha) for f in faces] == \
            [(f.track_id, f.matrix.tobytes(), f.alpha) for f in seen[i]], i
    single_off = work["folder"] / "single_off.mkv"
    render(replace(off, output=single_off))
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(single_off), chunked))


@pytest.mark.slow
def test_workers_with_the_faces_file_render_what_one_process_renders(work, tmp_path):
    """``--workers 3 --faces-from`` (three processes, no detector), temporal off: every frame
    equals the single run's (≈ 110 s on the shared 2-core machine; the in-process three-chunk
    test above covers the same point fast)."""
    import subprocess
    import sys

    from tests.exit_helpers import env

    testdata = work["testdata"]
    common = [str(work["clip"]), "--model", str(work["model"]), "--backend", "torch",
              "--device", "cpu", "--codec", "ffv1", "--temporal", "off", "--progress", "none",
              "--faces-from", str(work["faces"]), "--detector-weights",
              str(testdata / "weights" / "missing-on-purpose.pth")]
    single, chunked = tmp_path / "single.mkv", tmp_path / "chunked.mkv"
    for out, extra in ((single, []), (chunked, ["--workers", "3"])):
        done = subprocess.run([sys.executable, "-m", "gpen_video", common[0], str(out),
                               *common[1:], *extra], env=env(OMP_NUM_THREADS="1"),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    a, b = frames_of(single), frames_of(chunked)
    assert len(a) == len(b) == 36
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.slow
def test_the_ray_farm_with_the_faces_file_renders_what_one_process_renders(work, tmp_path):
    """``gpen-video farm --chunk 12 --faces-from`` (three chunks on Ray actors that load no
    detector), temporal off: every frame equals the single run's."""
    ray = pytest.importorskip("ray", reason="the 'farm' extra")
    from gpen_video.cli import main

    single = tmp_path / "single.mkv"
    options = replace(work["base"], faces_from=work["faces"], output=single,
                      temporal=replace(work["base"].temporal, mode="off"))
    render(options)
    out = tmp_path / "farm.mkv"
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code = main(["farm", str(work["clip"]), str(out), "--model", str(work["model"]),
                     "--backend", "torch", "--device", "cpu", "--codec", "ffv1",
                     "--temporal", "off", "--progress", "none", "--chunk", "12",
                     "--segments", "lossless", "--faces-from", str(work["faces"])])
    finally:
        if started:
            ray.shutdown()
    assert code == 0
    a, b = frames_of(single), frames_of(out)
    assert len(a) == len(b) == 36
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


# -- done-when 3: the sheet, selection -----------------------------------------------------------

def test_the_contact_sheet_has_a_cell_per_track(work):
    import cv2

    sheet = work["folder"] / "two.png"
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[1] >= 2 * 160
    assert work["report"].sheet == sheet and work["report"].tracks == 2


def test_brief_tracks_are_grouped(testdata):
    from fractions import Fraction

    from gpen_video.faces.sheet import ContactSheet
    from gpen_video.faces.types import SimilarityParams, TrackedFace
    from gpen_video.media.source import Frame

    sheet = ContactSheet("t", 25.0, brief=5)
    image = np.full((120, 160, 3), 90, np.uint8)
    for i in range(12):
        faces = [TrackedFace(1, i, np.zeros((2, 3)), 64, SimilarityParams(60, 60, 80, 0.0),
                             np.zeros((5, 2)), True, 0.99, True, i == 0, False, i, None, 1.0,
                             box=np.array([30.0, 30, 90, 90]))]
        if i < 3:
            faces.append(replace(faces[0], track_id=2, params=SimilarityParams(120, 60, 40,
                                                                                0.0)))
        sheet.add(Frame(image, i, i, Fraction(1, 25), 1), faces)
    assert sheet.tracks[1].frames == 12 and sheet.tracks[2].frames == 3
    drawn = sheet.image()
    full = ContactSheet("t", 25.0, brief=1)
    full.tracks, full.frames = sheet.tracks, sheet.frames
    # brief=5: one cell and a brief band below it; brief=1: two cells in one row
    assert drawn.shape[0] > full.image().shape[0]


def _pixels(work, out: Path, track: int) -> tuple[np.ndarray, list, list]:
    """Masks of ``track``'s footprint per frame, the render's frames, the source's."""
    source = frames_of(work["clip"])
    masks = [footprint(source[0].shape[:2],
                       [f for f in work["single"].get(i, []) if f.track_id == track])
             for i in range(len(source))]
    return masks, frames_of(out), source


@pytest.mark.parametrize("flags", [{"skip_tracks": (2,)}, {"tracks": (1,)}])
def test_unselected_faces_keep_the_sources_pixels(work, flags):
    out = work["folder"] / f"select-{'-'.join(flags)}.mkv"
    seen = render(replace(work["base"], output=out, faces_from=work["faces"], **flags))
    assert {f.track_id for fs in seen.values() for f in fs} == {1}
    masks, frames, source = _pixels(work, out, 2)
    assert sum(m.sum() for m in masks) > 0
    for mask, a, s in zip(masks, frames, source):
        assert np.array_equal(a[mask], s[mask])  # face 2: the source's decode, bit for bit
    single = frames_of(work["base"].output)
    ones, _, _ = _pixels(work, out, 1)
    assert all(np.array_equal(a[m], b[m]) for m, a, b in zip(ones, frames, single))


def test_selection_without_a_faces_file_uses_the_same_ids(work):
    out = work["folder"] / "skip-detect.mkv"
    seen = render(replace(work["base"], output=out, skip_tracks=(2,)), work["detector"])
    assert {f.track_id for fs in seen.values() for f in fs} == {1}
    skipped = frames_of(work["folder"] / "select-skip_tracks.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(out), skipped))


def test_per_track_strength_beside_the_global_one(work):
    out = work["folder"] / "strength.mkv"
    base = replace(work["base"], faces_from=work["faces"])
    render(replace(base, output=out, blend=BlendOptions(strength=0.5,
                                                        track_strength=((1, 1.0),))))
    half = work["folder"] / "half.mkv"
    render(replace(base, output=half, blend=BlendOptions(strength=0.5)))
    full = frames_of(work["base"].output)  # strength 1
    for track, reference in ((1, full), (2, frames_of(half))):
        masks, frames, _ = _pixels(work, out, track)
        assert all(np.array_equal(a[m], r[m]) for m, a, r in zip(masks, frames, reference))


# -- done-when 5: bad input ----------------------------------------------------------------------

def _cli(work, tmp_path, *extra: str, faces: Path | None = None, clip: Path | None = None
         ) -> tuple[int, str, Path]:
    from gpen_video.cli import main

    out = tmp_path / "out.mkv"
    args = [str(clip or work["clip"]), str(out), "--model", str(work["model"]), "--backend",
            "torch", "--device", "cpu", "--progress", "none", "--codec", "ffv1",
            "--faces-from", str(faces or work["faces"]), *extra]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue().strip(), out


def _rewrite(src: Path, dst: Path, edit) -> Path:
    lines = gzip.decompress(src.read_bytes()).decode().splitlines(keepends=True)
    dst.write_bytes(gzip.compress("".join(edit(lines)).encode()))
    return dst


def _with_crc(record: dict) -> str:
    body = json.dumps(record, separators=(",", ":"))
    return f'{body[:-1]},"crc":"{zlib.crc32(body.encode()):08x}"}}\n'


def _assert_refused(code: int, message: str, out: Path, *words: str) -> None:
    assert code == 2, message
    assert len(message.splitlines()) == 1 and message.startswith("gpen-video: error:")
    for word in words:
        assert word in message, message
    assert not out.exists() and not list(out.parent.glob(".out*"))


def test_an_analysis_of_another_clip_is_refused(work, tmp_path, testdata):
    other = testdata / "videos" / "liveportrait_d0.mp4"
    code, message, out = _cli(work, tmp_path, clip=other)
    _assert_refused(code, message, out, "another clip", "frame_count 36 ≠ 78", "height 288 ≠ 512",
                    "two.mov")


def test_a_clip_with_other_pixels_is_refused_by_its_frame_hashes(work, tmp_path, testdata):
    from tests.faces_file_helpers import two_faces_frames
    from tests.pipeline_helpers import write_clip

    frames = two_faces_frames(testdata)
    frames[0] = frames[0][::-1].copy()  # same size, length and rate; other pixels
    other = write_clip(tmp_path / "other.mov", frames)
    code, message, out = _cli(work, tmp_path, clip=other)
    _assert_refused(code, message, out, "hashes.0", "another clip")


def test_another_frame_range_is_refused(work, tmp_path):
    from gpen_video.pipeline.analysis import analyse

    part = tmp_path / "part.faces"
    analyse(replace(work["base"], output=part, range=replace(work["base"].range, start=0,
                                                             end=19)),
            part, detector=work["detector"], serial=True)
    code, message, out = _cli(work, tmp_path, "--frames", "10-30", faces=part)
    _assert_refused(code, message, out, "analysed frames 0-19", "field range", "10-30")
    code, message, out = _cli(work, tmp_path, faces=part)  # the whole clip
    _assert_refused(code, message, out, "frames 0-35")


def test_a_truncated_file_is_refused(work, tmp_path):
    cut = tmp_path / "cut.faces"
    cut.write_bytes(work["faces"].read_bytes()[: work["faces"].stat().st_size // 2])
    code, message, out = _cli(work, tmp_path, faces=cut)
    _assert_refused(code, message, out, "truncated", "cut.faces")
    # whole lines, no end line (e.g. a copy stopped between lines)
    short = _rewrite(work["faces"], tmp_path / "short.faces", lambda lines: lines[:30])
    code, message, out = _cli(work, tmp_path, faces=short)
    _assert_refused(code, message, out, "truncated", "no end line after line 30")


def test_a_hand_edited_file_is_refused_with_its_line_and_field(work, tmp_path):
    def nudge(lines):  # a number changed, the shape kept
        lines[5] = lines[5].replace('"a":1.0', '"a":0.9', 1)
        return lines

    edited = _rewrite(work["faces"], tmp_path / "edited.faces", nudge)
    assert edited.read_bytes() != work["faces"].read_bytes()
    code, message, out = _cli(work, tmp_path, faces=edited)
    _assert_refused(code, message, out, "line 6", "checksum", "edited")

    def shape(lines):  # a field of the wrong shape, with a valid checksum
        record = json.loads(lines[7])
        del record["crc"]
        record["faces"][0]["p"] = record["faces"][0]["p"][:3]
        lines[7] = _with_crc(record)
        return lines

    broken = _rewrite(work["faces"], tmp_path / "broken.faces", shape)
    code, message, out = _cli(work, tmp_path, faces=broken)
    _assert_refused(code, message, out, "line 8, field faces[0].p", "expected 4 numbers")


@pytest.mark.parametrize("version, words", [(0, ("version 0", "analyse` again")),
                                            (7, ("version 7", "newer", "upgrade"))])
def test_another_file_version_is_refused_with_the_reason(work, tmp_path, version, words):
    def header(lines):
        record = json.loads(lines[0])
        del record["crc"]
        record["version"] = version
        lines[0] = _with_crc(record)
        return lines

    old = _rewrite(work["faces"], tmp_path / "old.faces", header)
    code, message, out = _cli(work, tmp_path, faces=old)
    _assert_refused(code, message, out, "field version", *words)


def test_unknown_track_ids_are_refused_with_the_known_ones(work, tmp_path):
    code, message, out = _cli(work, tmp_path, "--tracks", "1,7")
    _assert_refused(code, message, out, "track 7", "its tracks: 1, 2")
    code, message, out = _cli(work, tmp_path, "--strength", "9=0.5")
    _assert_refused(code, message, out, "9", "its tracks: 1, 2")


def test_unknown_track_ids_of_a_detecting_run_leave_nothing(work, tmp_path):
    options = replace(work["base"], output=tmp_path / "out.mkv", tracks=(5,))
    from gpen_video.errors import UsageError

    with pytest.raises(UsageError, match=r"track 5: no such track in this run \(its tracks: "
                                         r"1, 2\)"):
        render(options, work["detector"])
    assert list(tmp_path.iterdir()) == []


def test_options_that_contradict_the_analysis_are_refused(work, tmp_path):
    code, message, out = _cli(work, tmp_path, "--detect", "full")
    _assert_refused(code, message, out, "--detect full contradicts", "analysed with --detect "
                    "tracked", "the analysis wins")
    # the value the analysis used, given explicitly, is not a contradiction
    code, message, out = _cli(work, tmp_path, "--smooth", "rts", "--frames", "0-3")
    assert code == 0, message
    assert out.exists()


def test_selecting_tracks_in_a_chunk_needs_the_faces_file(work, tmp_path):
    from gpen_video.errors import UsageError

    options = replace(work["base"], output=tmp_path / "out.mkv", skip_tracks=(2,),
                      range=replace(work["base"].range, start=10, end=20))
    with pytest.raises(UsageError, match="--faces-from"):
        render(options, work["detector"])
    assert list(tmp_path.iterdir()) == []


def test_analyse_command_refuses_an_existing_file_and_leaves_nothing_on_error(work, tmp_path):
    from gpen_video.cli import main

    target = tmp_path / "x.faces"
    target.write_text("keep me")
    assert main(["analyse", str(work["clip"]), str(target), "--progress", "none"]) == 2
    assert target.read_text() == "keep me"
    missing = tmp_path / "y.faces"
    code = main(["analyse", str(work["clip"]), str(missing), "--progress", "none",
                 "--detector-weights", str(tmp_path / "nope.pth")])
    assert code == 2 and not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.faces"]


def test_analyse_command_writes_the_file_and_the_sheet_beside_it(work, tmp_path):
    from gpen_video.cli import main

    target = tmp_path / "clip.faces"
    weights = work["testdata"] / "weights" / "detection_mobilenet0.25_Final.pth"
    assert main(["analyse", str(work["clip"]), str(target), "--detector-weights", str(weights),
                 "--device", "cpu", "--progress", "none", "--frames", "0-11"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.faces", "clip.faces.sheet.png"]
    faces = open_faces(target)
    assert (faces.start, faces.last) == (0, 11) and faces.track_ids == (1,)


def test_detect_options_are_recorded(work):
    header = open_faces(work["faces"]).header
    assert header["options"]["detect"]["mode"] == DetectOptions().mode
    assert header["options"]["detect"]["weights"] == "detection_mobilenet0.25_Final.pth"
    assert header["clip"]["frame_count"] == 36 and header["clip"]["fps"] == "25"
    assert open_faces(work["faces"]).hashes.keys() == {0, 9, 18, 26, 35}


def test_bench_faces_from_times_renders_that_detect_nothing(work, tmp_path):
    """``gpen-video bench --faces-from analyse``: one untimed analysis per clip, then the timed
    runs read it: faces restored, detect 0 s."""
    from gpen_video.backends.identity import IdentityRestorer
    from gpen_video.bench import run_bench
    from gpen_video.options import BenchOptions, RestoreOptions, RunOptions

    run = RunOptions(input=Path("-"), output=Path("-"), progress="none",
                     restore=RestoreOptions(backend="identity", device="cpu", batch=4),
                     detect=work["base"].detect)
    options = BenchOptions(run=run, scenes=("320x180:1",), frames=8, repeats=1, warmup=2,
                           mode="serial", workdir=tmp_path, faces_from=True)
    report = run_bench(options, restorer=IdentityRestorer(restore=RestoreOptions(batch=4),
                                                           size=256),
                       detector=work["detector"])
    (worker,) = report["scenes"][0]["workers"]
    (timed,) = worker["serial"]["runs"]
    assert worker["faces_from"] and worker["analysis_seconds"] > 0
    assert timed["faces"] == 8 and timed["stage_seconds"]["detect"] == 0.0
    assert report["config"]["faces_from"] is True
