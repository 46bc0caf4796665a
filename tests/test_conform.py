"""``gpen-video conform`` (gpen_video.conform): what an edit uses, rendered once, relinked.

Media: two real clips of ``testdata/videos`` cut to 128×128 (``tests/conform_helpers.py``) and a
synthetic clip without a face. Renders use the identity restorer, the real MobileNet detector,
full-frame detection and lossless FFV1, so a restored range can be compared bit for bit with a
whole-clip render of its source.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

otio = pytest.importorskip("opentimelineio")

from gpen_video.conform import plan  # noqa: E402
from gpen_video.conform.media import url_to_path  # noqa: E402
from gpen_video.conform.plan import MediaFacts  # noqa: E402
from tests import conform_helpers as ch  # noqa: E402
from tests.media_helpers import VideoSpec, make_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "testdata" / "weights" / "detection_mobilenet0.25_Final.pth"
RENDER = ["--backend", "identity", "--device", "cpu", "--detector", "mobile0.25",
          "--detector-weights", str(WEIGHTS), "--detect", "full", "--codec", "ffv1",
          "--pix-fmt", "bgr0", "--progress", "none"]


def gpen(*args: object) -> tuple[int, str, str]:
    """``gpen-video ARGS`` in this process: (exit code, stdout, stderr)."""
    from gpen_video.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def faceless_clip(path: Path, frames: int = 30) -> Path:
    """A pattern clip without a face (H.264 .mov, 25 fps)."""
    from fractions import Fraction

    return make_video(path, VideoSpec(n=frames, width=96, height=64, rate=Fraction(25),
                                      codec="libx264", pix_fmt="yuv420p"))


@pytest.fixture(scope="module")
def media(tmp_path_factory, testdata) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    a, b = ch.make_media(folder, testdata)
    return {"A": a, "B": b, "C": faceless_clip(folder / "C.mov")}


# -- the plan (pure) ---------------------------------------------------------------------------


def test_what_each_clip_shows_through_transitions_warps_freezes_and_nesting(media) -> None:
    uses, skipped = plan.collect_uses(ch.edit_timeline(media["A"], media["B"]))
    shown = {u.name: (u.first, u.last, u.shown, u.effect) for u in uses}
    o = ch.A_ORIGIN
    assert shown == {
        "A1": (o + 1, o + 15, 15, ""),  # 12 frames + 3 revealed by the dissolve after it
        "B1": (17, 31, 15, ""),  # 3 revealed before it
        "A2 2x": (o + 30, o + 40, 6, "2× speed"),  # 6 timeline frames show 30, 32, … 40
        "B2 nested": (44, 51, 8, ""),  # the stack shows its frames 4-11 of a clip from 40
        "A3 overlap": (o + 8, o + 17, 10, ""),
        "B3 freeze": (5, 5, 4, "freeze frame"),
    }
    assert [u.track for u in uses][3] == "V1 › nest › inner"
    assert skipped.as_dict() == {"gaps": 2, "generators": 0, "titles": 0, "audio": 1,
                                 "disabled": 0, "image_sequences": 0}


def test_handles_are_clamped_and_ranges_of_one_file_merged(media) -> None:
    uses, _ = plan.collect_uses(ch.edit_timeline(media["A"], media["B"]))
    facts = {uses[0].media: MediaFacts(ch.A_FRAMES, 25.0, ch.A_ORIGIN),
             uses[1].media: MediaFacts(ch.B_FRAMES, 25.0, 0)}
    media_of = {u.index: u.media for u in uses}
    tight = plan.merge_ranges(plan.file_uses(uses, facts, 2), media_of, 0)
    assert [(Path(r.media).stem, r.first, r.last) for r in tight] == [
        ("A", 0, 19), ("A", 28, 42), ("B", 3, 7), ("B", 15, 33), ("B", 42, 53)]
    assert sum(r.count for r in tight) == 71
    # the default 12-frame handles reach both ends of A, and the default gap joins B's ranges
    wide = plan.merge_ranges(plan.file_uses(uses, facts, plan.DEFAULT_HANDLES), media_of)
    assert [(Path(r.media).stem, r.first, r.last) for r in wide] == [("A", 0, 47), ("B", 0, 59)]


def test_a_remapped_clip_and_a_warped_stack_are_refused_by_name(media) -> None:
    tl = ch.edit_timeline(media["A"], media["B"])
    clip = next(c for c in tl.find_clips() if c.name == "B1")
    clip.effects.append(otio.schema.TimeEffect(name="remap", effect_name="TimeRemap"))
    with pytest.raises(plan.UnsupportedEffect, match="clip 'B1' .*TimeRemap"):
        plan.collect_uses(tl)
    tl = ch.edit_timeline(media["A"], media["B"])
    nest = next(s for s in tl.find_children(descended_from_type=otio.schema.Stack)
                if s.name == "nest")
    nest.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    with pytest.raises(plan.UnsupportedEffect, match="nested stack 'nest'"):
        plan.collect_uses(tl)


def test_generators_titles_and_disabled_clips_are_skipped_and_counted(media) -> None:
    tl = ch.edit_timeline(media["A"], media["B"])
    v2 = tl.video_tracks()[1]
    v2.append(otio.schema.Clip(name="black", source_range=ch._tr(0, 5),
                               media_reference=otio.schema.GeneratorReference(
                                   generator_kind="SolidColor")))
    v2.append(otio.schema.Clip(name="title", source_range=ch._tr(0, 5),
                               media_reference=otio.schema.GeneratorReference(
                                   generator_kind="Title")))
    off = ch.clip("off", media["B"], 0, 5)
    off.enabled = False
    v2.append(off)
    uses, skipped = plan.collect_uses(tl)
    assert len(uses) == 6
    assert (skipped.generators, skipped.titles, skipped.disabled) == (1, 1, 1)


def test_rate_and_length_disagreements_are_named(media) -> None:
    uses, _ = plan.collect_uses(ch.edit_timeline(media["A"], media["B"]))
    a, b = uses[0].media, uses[1].media
    good = {a: MediaFacts(ch.A_FRAMES, 25.0, ch.A_ORIGIN), b: MediaFacts(ch.B_FRAMES, 25.0, 0)}
    with pytest.raises(plan.LengthMismatch, match="at 25 fps but the file runs at 30 fps"):
        plan.file_uses(uses, {**good, b: MediaFacts(ch.B_FRAMES, 30.0, 0)}, 0)
    with pytest.raises(plan.LengthMismatch, match="has 60 frames but the file has 50"):
        plan.file_uses(uses, {**good, b: MediaFacts(50, 25.0, 0)}, 0)
    undeclared = plan.collect_uses(ch.edit_timeline(media["A"], media["B"]))[0]
    for use in undeclared:  # the same clips without available ranges
        object.__setattr__(use, "declared_frames", None)
        object.__setattr__(use, "declared_start", None)
    with pytest.raises(plan.LengthMismatch, match="'B2 nested'.*frames 44-51.*0-39"):
        plan.file_uses(undeclared, {**good, b: MediaFacts(40, 25.0, 0)}, 0)


# -- the whole conform -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conformed(tmp_path_factory, media) -> dict:
    """The edit timeline (plus a clip of the faceless C) conformed with handles 2 and no merge
    gap, and whole-clip renders of A, B and C with the same settings."""
    from gpen_video.media import VideoSource

    work = tmp_path_factory.mktemp("conform")
    tl = ch.edit_timeline(media["A"], media["B"])
    tl.video_tracks()[1].append(ch.clip("C plain", media["C"], 10, 5, frames=30))
    timeline = work / "cut.otio"
    otio.adapters.write_to_file(tl, str(timeline))
    whole = {}
    for name, path in media.items():
        whole[name] = work / f"whole_{name}.mkv"
        code, _, err = gpen(path, whole[name], *RENDER)
        assert code == 0, err
    outdir = work / "out"
    code, out, err = gpen("conform", timeline, outdir, "--handles", 2, "--merge-gap", 0,
                          "--json", *RENDER)
    assert code == 0, err
    with VideoSource(media["C"]) as src:
        c_frames = src.frame_count
    return {"timeline": timeline, "outdir": outdir, "report": json.loads(out), "whole": whole,
            "c_frames": c_frames}


def test_conform_renders_exactly_the_used_ranges_with_handles(conformed) -> None:
    from gpen_video.media import VideoSource

    report = conformed["report"]
    ranges = {r["output"]: (r["first"], r["last"], r["status"])
              for m in report["media"] for r in m["ranges"]}
    assert ranges == {"A_0-19.mkv": (0, 19, "rendered"), "A_28-42.mkv": (28, 42, "rendered"),
                      "B_3-7.mkv": (3, 7, "rendered"), "B_15-33.mkv": (15, 33, "rendered"),
                      "B_42-53.mkv": (42, 53, "rendered"), "C_8-16.mkv": (8, 16, "no face")}
    outdir = conformed["outdir"]
    counted = 0
    for name, (first, last, status) in ranges.items():
        if status == "no face":  # rendered, found no face, not kept
            assert not (outdir / name).exists()
            continue
        with VideoSource(outdir / name) as src:
            frames = sum(1 for _ in src)
        assert frames == last - first + 1, name
        counted += frames
    assert counted == 71
    totals = report["totals"]
    assert totals["render_frames"] == 71 + 9
    assert totals["media_frames"] == ch.A_FRAMES + ch.B_FRAMES + conformed["c_frames"]
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        [n for n, r in ranges.items() if r[2] != "no face"]
        + ["cut.conform.json", "cut.restored.otio"])


def test_every_frame_the_restored_timeline_shows_is_the_whole_clip_render_s(conformed,
                                                                             media) -> None:
    """For every video track and timeline frame, the frame the relinked timeline shows (its
    clip's active reference at that source frame) against the whole-clip render's frame at the
    same source frame: bit-identical in ranges that start at the clip's first frame (nothing
    differs from the whole render), else within the farm chunks' bound (≥ 40 dB; measured:
    identical too)."""
    from tests.workers_helpers import psnr

    restored = otio.adapters.read_from_file(str(conformed["outdir"] / "cut.restored.otio"))
    original = otio.adapters.read_from_file(str(conformed["timeline"]))
    before = [c.source_range for c in original.find_clips()]
    assert [c.source_range for c in restored.find_clips()] == before  # edit unchanged
    whole = {k: ch.decoded(v) for k, v in conformed["whole"].items()}
    origin = {"A": ch.A_ORIGIN, "B": 0, "C": 0}
    files: dict[Path, list] = {}
    seen = {"identical": 0, "close": 0}
    samples = ch.shown_frames(restored)
    for s in samples:
        path = url_to_path(s.ref_url, Path("/"))
        files.setdefault(path, ch.decoded(path))
        image = files[path][s.media_frame - s.ref_start]
        source = "C" if s.clip == "C plain" else path.stem[0]
        reference = whole[source][s.media_frame - origin[source]]
        value = psnr(image, reference)
        if path.name.startswith("A_0-") or s.clip == "C plain":
            assert value == float("inf"), (s, value)
        assert value >= 40.0, (s, value)
        seen["identical" if value == float("inf") else "close"] += 1
    assert len(samples) == 12 + 3 + 12 + 3 + 6 + 8 + 10 + 4 + 5  # every shown frame sampled
    print(f"frames compared: {seen}")


def test_restored_clips_point_at_their_media_by_timecode(conformed, media) -> None:
    from gpen_video.media import VideoSource
    from gpen_video.media.timecode import format_timecode

    restored = otio.adapters.read_from_file(str(conformed["outdir"] / "cut.restored.otio"))
    for c in restored.find_clips():
        refs = c.media_references()
        if c.name in ("C plain", "sound"):  # no face / an audio clip: untouched
            assert c.active_media_reference_key == "DEFAULT_MEDIA", c.name
            continue
        assert c.active_media_reference_key == "restored"
        assert url_to_path(refs["original"].target_url, Path("/")).name in ("A.mov", "B.mov")
        ref = refs["restored"]
        path = url_to_path(ref.target_url, Path("/"))
        start = int(ref.available_range.start_time.value)
        # the frames the clip shows lie in the restored file (the nested clip shows only its
        # frames 44-51: its stack trims it; a warped clip start + ⌊i·s⌋)
        first = int(c.source_range.start_time.value)
        last = first + int((c.source_range.duration.value - 1) * ch._scalar(c))
        shown = (44, 51) if c.name == "B2 nested" else (first, last)
        assert start <= shown[0] and shown[1] < start + ref.available_range.duration.value
        with VideoSource(path) as src:  # the file's timecode is its available range's start
            assert src.timecode == format_timecode(start, 25)
            assert src.fps == 25
            audio = [k for _, k, _ in src.other_streams if k == "audio"]
        assert audio == ["audio"]  # the range's audio kept


def test_a_rerun_reuses_every_finished_range(conformed) -> None:
    code, out, err = gpen("conform", conformed["timeline"], conformed["outdir"], "--handles", 2,
                          "--merge-gap", 0, "--json", "--dry-run", *RENDER)
    assert code == 0, err
    assert {r["status"] for m in json.loads(out)["media"] for r in m["ranges"]} == {
        "reused", "no face"}
    code, out, err = gpen("conform", conformed["timeline"], conformed["outdir"], "--handles", 2,
                          "--merge-gap", 0, "--json", *RENDER)
    assert code == 0, err
    totals = json.loads(out)["totals"]
    assert (totals["rendered_now"], totals["reused_frames"]) == (0, 80)


# -- other timeline formats --------------------------------------------------------------------

EDL = """TITLE: edl cut
FCM: NON-DROP FRAME

001  A        V     C        01:00:00:04 01:00:00:10 00:00:00:00 00:00:00:06
* FROM CLIP NAME:  A take
* FROM CLIP: {a}

002  B        V     C        00:00:01:05 00:00:01:13 00:00:00:06 00:00:00:14
* FROM CLIP NAME:  B.mov
"""


def test_edl_round_trip_points_events_at_the_restored_files(tmp_path, media) -> None:
    """EDL in (the second event names only a clip, found with --search-path) → restored EDL
    out: same record and source timecodes, reels and FROM CLIP lines of the restored files,
    whose timecodes hold those source timecodes."""
    from gpen_video.media import VideoSource
    from gpen_video.media.timecode import parse_timecode

    edl = tmp_path / "cut.edl"
    edl.write_text(EDL.format(a=media["A"]))
    outdir = tmp_path / "out"
    code, _, err = gpen("conform", edl, outdir, "--rate", 25, "--handles", 0, *RENDER)
    assert code == 2 and "'B.mov' (the timeline gives only this name" in err
    assert not outdir.exists()
    code, out, err = gpen("conform", edl, outdir, "--rate", 25, "--handles", 0,
                          "--search-path", media["B"].parent, *RENDER)
    assert code == 0, err
    text = (outdir / "cut.restored.edl").read_text()
    assert "001  A_4-9    V     C        01:00:00:04 01:00:00:10 00:00:00:00 00:00:00:06" in text
    assert "002  B_30-37  V     C        00:00:01:05 00:00:01:13 00:00:00:06 00:00:00:14" in text
    back = otio.adapters.read_from_file(str(outdir / "cut.restored.edl"), rate=25)
    for clip, name in zip(back.find_clips(), ["A_4-9.mkv", "B_30-37.mkv"]):
        path = Path(clip.media_reference.target_url)
        assert path == (outdir / name).resolve()
        with VideoSource(path) as src:
            first = parse_timecode(src.timecode, 25)
            frames = sum(1 for _ in src)
        assert first == clip.source_range.start_time.value  # the event's source in
        assert frames == clip.source_range.duration.value


def test_fcp7_xml_input_is_read(tmp_path, media) -> None:
    xml = (Path(__file__).parent / "data" / "conform_fcp7.xml").read_text()
    (tmp_path / "cut.xml").write_text(xml.replace("MEDIA_A", media["A"].as_uri())
                                      .replace("MEDIA_B", media["B"].as_uri()))
    code, out, err = gpen("conform", tmp_path / "cut.xml", tmp_path / "out", "--dry-run",
                          "--handles", 0, "--json", *RENDER)
    assert code == 0, err
    clips = {c["name"]: (Path(c["media"]).name, c["used"]) for c in json.loads(out)["clips"]}
    assert clips == {"A take": ("A.mov", [4, 9]), "B take": ("B.mov", [30, 37])}
    assert not (tmp_path / "out").exists()
    # without --codec the restored files follow the source: H.264 stays in .mov
    code, out, err = gpen("conform", tmp_path / "cut.xml", tmp_path / "out", "--dry-run",
                          "--handles", 0, "--json", *RENDER[:RENDER.index("--codec")])
    assert code == 0, err
    assert [c["output"] for c in json.loads(out)["clips"]] == ["A_4-9.mov", "B_30-37.mov"]


def test_one_file_named_two_ways_is_one_media(tmp_path, media) -> None:
    """A path and a file:// URL of the same file: one media, its ranges merged."""
    tl = otio.schema.Timeline(name="two names")
    track = otio.schema.Track(name="V1")
    track.append(ch.clip("by path", media["B"], 5, 6))
    track.append(ch.clip("by url", media["B"], 9, 6, url=media["B"].as_uri()))
    tl.tracks.append(track)
    code, out, err = gpen("conform", _write(tl, tmp_path / "cut.otio"), tmp_path / "out",
                          "--dry-run", "--handles", 0, "--json", *RENDER)
    assert code == 0, err
    report = json.loads(out)
    assert [(m["path"], [(r["first"], r["last"]) for r in m["ranges"]])
            for m in report["media"]] == [(str(media["B"]), [(5, 14)])]


def test_dry_run_on_three_media_prints_the_plan_and_renders_nothing(tmp_path, media) -> None:
    tl = ch.edit_timeline(media["A"], media["B"])
    tl.video_tracks()[1].append(ch.clip("C plain", media["C"], 10, 5))
    otio.adapters.write_to_file(tl, str(tmp_path / "cut.otio"))
    code, out, err = gpen("conform", tmp_path / "cut.otio", tmp_path / "out", "--dry-run",
                          *RENDER)
    assert code == 0, err
    assert "plan (dry run, nothing rendered)" in out and "7 clips of 3 media files" in out
    for name in ("A_0-47.mkv", "B_0-59.mkv", "C_0-26.mkv"):  # 12-frame handles, merged
        assert f"→ {name}: planned" in out
    assert not (tmp_path / "out").exists()


# -- bad input ---------------------------------------------------------------------------------


def _write(tl, path: Path) -> Path:
    otio.adapters.write_to_file(tl, str(path))
    return path


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("gpen-video: error")]
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    return lines[0]


def test_missing_media_are_listed_at_once_before_anything_renders(tmp_path, media) -> None:
    tl = ch.edit_timeline(media["A"], media["B"])
    v2 = tl.video_tracks()[1]
    v2.append(ch.clip("gone 1", tmp_path / "lost" / "X.mov", 0, 5))
    v2.append(ch.clip("gone 2", tmp_path / "lost" / "Y.mov", 0, 5))
    code, _, err = gpen("conform", _write(tl, tmp_path / "cut.otio"), tmp_path / "out", *RENDER)
    line = _one_line_error(err)
    assert code == 2
    assert "2 media file(s)" in line and "X.mov (clips 'gone 1')" in line and "Y.mov" in line
    assert "--search-path" in line
    assert not (tmp_path / "out").exists()
    found = tmp_path / "elsewhere" / "deeper"  # --search-path finds them by name, below DIR
    found.mkdir(parents=True)
    for name in ("X.mov", "Y.mov"):
        faceless_clip(found / name)
    code, out, err = gpen("conform", tmp_path / "cut.otio", tmp_path / "out", "--dry-run",
                          "--search-path", tmp_path / "elsewhere", "--json", *RENDER)
    assert code == 0, err
    assert {Path(m["path"]).name for m in json.loads(out)["media"]} == {"A.mov", "B.mov",
                                                                         "X.mov", "Y.mov"}


@pytest.mark.parametrize("case", ["effect", "rate", "length", "inside", "adapter", "in the way"])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tmp_path, media, case) -> None:
    tl = ch.edit_timeline(media["A"], media["B"])
    timeline = tmp_path / "cut.otio"
    outdir = tmp_path / "out"
    extra: list[object] = []
    if case == "effect":
        clip = next(c for c in tl.find_clips() if c.name == "A3 overlap")
        clip.effects.append(otio.schema.TimeEffect(effect_name="TimeRemap"))
        expect = "clip 'A3 overlap' (V2) has a time effect conform cannot follow: 'TimeRemap'"
    elif case == "rate":
        timeline = tmp_path / "cut.edl"
        timeline.write_text(EDL.format(a=media["A"]).split("002")[0])
        extra = ["--rate", 24]
        expect = "counts " + str(media["A"]) + " at 24 fps but the file runs at 25 fps"
    elif case == "length":
        clip = next(c for c in tl.find_clips() if c.name == "B1")
        clip.media_reference.available_range = ch._tr(0, 100)
        expect = "the timeline says " + str(media["B"]) + " has 100 frames but the file has 60"
    elif case == "inside":
        outdir = media["A"].parent / "restored"
        expect = "is inside the folder of the media"
    elif case == "adapter":
        if "fcpx_xml" in {a.name for a in otio.plugins.ActiveManifest().adapters}:
            pytest.skip("the FCPXML adapter is installed here")
        timeline = tmp_path / "cut.fcpxml"
        timeline.write_text("<fcpxml/>")
        expect = "needs the fcpx_xml adapter: pip install otio-fcpx-xml-adapter"
    else:  # a file OUTDIR already holds under a planned name, not made by this conform
        outdir.mkdir()
        (outdir / "A_0-47.mkv").write_bytes(b"someone else's")
        expect = "A_0-47.mkv exists and is not a finished render of this conform"
    if timeline.suffix == ".otio":
        _write(tl, timeline)
    code, _, err = gpen("conform", timeline, outdir, *extra, *RENDER)
    assert code == 2 and expect in _one_line_error(err), err
    if case == "in the way":
        assert [p.name for p in outdir.iterdir()] == ["A_0-47.mkv"]
        assert (outdir / "A_0-47.mkv").read_bytes() == b"someone else's"
    else:
        assert not outdir.exists()


# -- interruption and workers ------------------------------------------------------------------


def _two_range_timeline(tmp_path: Path, media) -> Path:
    """A, frames 5-10 and 30-35: two ranges with --handles 0 (or 2) and --merge-gap 0."""
    tl = otio.schema.Timeline(name="two")
    track = otio.schema.Track(name="V1")
    track.append(ch.clip("early", media["A"], 5, 6, origin=ch.A_ORIGIN, frames=ch.A_FRAMES))
    track.append(ch.clip("late", media["A"], 30, 6, origin=ch.A_ORIGIN, frames=ch.A_FRAMES))
    tl.tracks.append(track)
    return _write(tl, tmp_path / "two.otio")


def test_an_interrupted_conform_resumes_with_only_what_was_missing(tmp_path, media,
                                                                   monkeypatch) -> None:
    """Ctrl-C while the second range renders: exit 130, the first range and the record stay,
    nothing partial; the same command then renders only the second range."""
    from gpen_video import pipeline

    real = pipeline.run
    calls: list[Path] = []

    def interrupted_second(options, **kw):
        calls.append(Path(options.output))
        if len(calls) == 2:
            observer = kw["observer"]

            def stop(index, faces):
                observer(index, faces)
                raise KeyboardInterrupt

            kw["observer"] = stop
        return real(options, **kw)

    timeline, outdir = _two_range_timeline(tmp_path, media), tmp_path / "out"
    monkeypatch.setattr(pipeline, "run", interrupted_second)
    code, _, err = gpen("conform", timeline, outdir, "--handles", 0, "--merge-gap", 0, *RENDER)
    assert code == 130, err
    assert sorted(p.name for p in outdir.iterdir()) == ["A_5-10.mkv", "two.conform.json"]
    monkeypatch.setattr(pipeline, "run", real)
    code, out, err = gpen("conform", timeline, outdir, "--handles", 0, "--merge-gap", 0, "--json",
                          *RENDER)
    assert code == 0, err
    report = json.loads(out)
    assert (report["totals"]["rendered_now"], report["totals"]["reused_frames"]) == (6, 6)
    assert {r["output"]: r["status"] for r in report["media"][0]["ranges"]} == {
        "A_5-10.mkv": "reused", "A_30-35.mkv": "rendered"}


@pytest.mark.slow  # two spawned workers loading torch: ≈ 60 s here; fast side: the next test
def test_two_workers_render_the_frames_one_renders(tmp_path, media) -> None:
    from tests.farm_helpers import gpen_video

    timeline = _two_range_timeline(tmp_path, media)
    one, two = tmp_path / "one", tmp_path / "two"
    code, _, err = gpen("conform", timeline, one, "--handles", 2, "--merge-gap", 0, *RENDER)
    assert code == 0, err
    done = gpen_video("conform", timeline, two, "--handles", 2, "--merge-gap", 0, "--workers", 2,
                      *RENDER, timeout=600)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in one.glob("*.mkv"))
    assert names == ["A_28-37.mkv", "A_3-12.mkv"]
    assert sorted(p.name for p in two.glob("*.mkv")) == names
    from gpen_video.media import VideoSource

    for name in names:
        a, b = ch.decoded(one / name), ch.decoded(two / name)
        assert len(a) == len(b) == 10
        assert all((x == y).all() for x, y in zip(a, b)), name
        with VideoSource(one / name) as x, VideoSource(two / name) as y:
            assert x.timecode == y.timecode is not None  # the stitch keeps the range's timecode


@pytest.mark.slow  # a local Ray cluster and its actors: a minute or more here
def test_farm_renders_the_frames_one_process_renders(tmp_path, media) -> None:
    """``--farm``: each range on a local Ray cluster in chunks of 4 frames, stitched: the same
    frames and timecodes as the in-process render; faces are not counted there."""
    pytest.importorskip("ray")
    from gpen_video.media import VideoSource
    from tests.farm_helpers import gpen_video

    timeline = _two_range_timeline(tmp_path, media)
    one, farm = tmp_path / "one", tmp_path / "farm"
    code, _, err = gpen("conform", timeline, one, "--handles", 2, "--merge-gap", 0, *RENDER)
    assert code == 0, err
    done = gpen_video("conform", timeline, farm, "--handles", 2, "--merge-gap", 0, "--farm",
                      "--chunk", 4, "--json", *RENDER, timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {r["output"]: (r["status"], r["faces"]) for r in report["media"][0]["ranges"]} == {
        "A_3-12.mkv": ("rendered", None), "A_28-37.mkv": ("rendered", None)}
    for name in ("A_3-12.mkv", "A_28-37.mkv"):
        a, b = ch.decoded(one / name), ch.decoded(farm / name)
        assert len(a) == len(b) == 10
        assert all((x == y).all() for x, y in zip(a, b)), name
        with VideoSource(one / name) as x, VideoSource(farm / name) as y:
            assert x.timecode == y.timecode is not None
    assert sorted(p.name for p in farm.iterdir()) == [
        "A_28-37.mkv", "A_3-12.mkv", "two.conform.json", "two.restored.otio"]


def test_workers_queue_the_chunks_of_every_range_once(tmp_path, media) -> None:
    """``--workers``: each range is cut into chunks that cover it exactly, numbered on one
    queue across ranges, each with its warm-up (the fast side of the two-worker test)."""
    import argparse

    from gpen_video.commands import conform as conform_command
    from gpen_video.conform import media as media_mod
    from gpen_video.conform import render
    from gpen_video.media import paths

    parser = argparse.ArgumentParser()
    conform_command.configure(parser)
    options = conform_command.options_from_args(parser.parse_args(
        [str(_two_range_timeline(tmp_path, media)), str(tmp_path / "out"), *RENDER]))
    tl = otio.adapters.read_from_file(str(options.timeline))
    uses, _ = plan.collect_uses(tl)
    found = media_mod.probe(media_mod.locate(uses, tmp_path, []), uses)
    ranges = plan.merge_ranges(plan.file_uses(uses, {k: m.facts for k, m in found.items()}, 0),
                               {u.index: u.media for u in uses}, 0)
    (tmp_path / "out").mkdir()
    jobs = render.plan_jobs(ranges, found, tmp_path / "out", options.run)
    offset, plans = 0, []
    try:
        for job in jobs:
            plans.append(render._range_chunks(job, 4, offset))
            offset += len(plans[-1]["chunks"])
        indices = [c.index for p in plans for c, _ in p["chunks"]]
        assert indices == list(range(len(indices))) == list(range(4))  # 6 frames: 4 + 2, twice
        for job, p in zip(jobs, plans):
            frames = [f for c, _ in p["chunks"] for f in range(c.start, c.end + 1)]
            assert frames == list(range(job.range.first, job.range.last + 1))
            for c, o in p["chunks"]:
                assert (o.range.start, o.range.end) == (c.start, c.end)
                assert o.range.overlap >= min(c.start, 8)  # decoded before it: the warm-up
                assert o.output.parent == p["folder"] and o.encode.tracks is False
    finally:
        for p in plans:
            paths.remove_quietly(p["folder"])
    assert list((tmp_path / "out").iterdir()) == []


def test_a_format_whose_adapter_cannot_write_the_timeline_leaves_the_otio(tmp_path, media,
                                                                          caplog) -> None:
    """OTIO's AAF writer needs Avid mob ids a plain file reference lacks: the restored
    timeline is then the .otio alone, with a warning, and no partial AAF."""
    from gpen_video.conform import relink

    if "AAF" not in {a.name for a in otio.plugins.ActiveManifest().adapters}:
        pytest.skip("the AAF adapter is not installed")
    tl = ch.edit_timeline(media["A"], media["B"])
    with caplog.at_level("WARNING", logger="gpen_video.conform"):
        written = relink.write_restored(tl, tmp_path / "cut.aaf", tmp_path, "AAF", None)
    assert written == [tmp_path / "cut.restored.otio"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.restored.otio"]
    assert "could not be written as cut.restored.aaf" in caplog.text
