"""The end-to-end restorer (issue 5, "Done when" 1–6), on the CPU with the real MobileNet detector.

GPEN here is a random-weight network of the real architecture at reduced size (128 px, narrow
0.125): its output is not a restoration, it exercises the plumbing. Geometry is checked with the
identity restorer. Lossless outputs (PNG in .mov, RGB) make "unchanged" checkable bit for bit.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpen_video import pipeline
from tests.geometry import face_photo, psnr
from tests.pipeline_helpers import (face_scene, flicker, mask_union, read_frames, run_options,
                                    save_small_gpen, write_clip)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_gpen(tmp_path_factory) -> Path:
    return save_small_gpen(tmp_path_factory.mktemp("gpen") / "gpen128-random.pth")


def _clips(testdata: Path) -> list[Path]:
    return sorted((testdata / "videos").glob("*.mp4"))


def _observe():
    seen: dict[int, list] = {}
    return seen, lambda index, faces: seen.__setitem__(index, faces)


# ------------------------------------------------------------------ 1. identity round trip (B3)


@pytest.mark.parametrize("face_px", [128, 256, 512])
def test_identity_round_trip_through_the_pipeline(testdata, tmp_path, face_px):
    photo = face_photo(testdata)
    hw = (2 * face_px + 40, 2 * face_px + 80)
    image = face_scene(photo, face_px, 7.0, hw, (hw[1] / 2 + 0.3, hw[0] / 2 - 0.4))
    src = write_clip(tmp_path / "face.mov", [image] * 6)
    out = tmp_path / "out.mov"
    seen, observer = _observe()
    summary = pipeline.run(run_options(testdata, src, out, backend="identity", codec="png"),
                           observer=observer)
    assert summary.frames == 6 and summary.faces == 6 and summary.tracks == 1
    for a, b in zip(read_frames(src), read_frames(out), strict=True):
        cover = mask_union(seen[a.index], a.image.shape)
        outside, core = cover == 0, cover >= 0.999
        assert outside.sum() > 0 and core.sum() > 5000
        assert np.array_equal(a.image[outside], b.image[outside])
        assert psnr(a.image[core], b.image[core]) >= 40.0


@pytest.mark.parametrize("n", [1, 2])
def test_face_in_a_one_or_two_frame_clip_is_restored(testdata, tmp_path, small_gpen, n):
    """Random-weight GPEN (plumbing only): the face region changes, every other pixel is
    bit-identical (lossless PNG in .mov)."""
    photo = face_photo(testdata)
    image = face_scene(photo, 176, 3.0, (288, 320), (160.0, 140.0))
    src = write_clip(tmp_path / "short.mov", [image] * n)
    out = tmp_path / "out.mov"
    seen, observer = _observe()
    summary = pipeline.run(run_options(testdata, src, out, model=small_gpen, codec="png"),
                           observer=observer)
    assert summary.frames == n and summary.faces == n and summary.tracks == 1
    for a, b in zip(read_frames(src), read_frames(out), strict=True):
        assert [p.alpha for p in seen[a.index]] == [1.0]
        cover = mask_union(seen[a.index], a.image.shape)
        outside, core = cover == 0, cover >= 0.999
        assert np.array_equal(a.image[outside], b.image[outside])
        changed = np.abs(a.image[core].astype(int) - b.image[core].astype(int)).mean()
        assert core.sum() > 5000 and changed > 5.0, changed


# ------------------------------------------------------------------ 2. determinism


def test_same_input_twice_gives_bit_identical_output(testdata, tmp_path, small_gpen):
    clip = testdata / "videos" / "liveportrait_d11.mp4"
    outputs, texts = [], []
    for i, progress in enumerate(["plain", "json"]):
        out = tmp_path / f"out{i}.mp4"
        stdout = io.StringIO()
        summary = pipeline.run(run_options(testdata, clip, out, model=small_gpen, frames=(0, 14),
                                           progress=progress), stdout=stdout, stderr=stdout)
        assert summary.frames == 15 and summary.faces == 15
        outputs.append([f.image for f in read_frames(out)])
        texts.append(stdout.getvalue())
    assert len(outputs[0]) == 15
    assert all(np.array_equal(a, b) for a, b in zip(*outputs, strict=True))
    plain = texts[0].splitlines()
    assert plain[0] == "Progress: 0%" or plain[0].startswith("Progress: ")
    assert "Progress: 100%" in plain and "15 faces in 1 track," in texts[0]
    events = [json.loads(line) for line in texts[1].splitlines()]
    assert events[-1]["event"] == "summary" and events[-1]["faces"] == 15
    assert set(events[-1]["stage_seconds"]) >= {"decode", "detect", "restore", "paste", "encode"}


# ------------------------------------------------------------------ 3. static-scene flicker (B2)


def _noisy_still(testdata: Path, path: Path, n: int = 60) -> Path:
    """One still face, ``n`` times, each frame with fresh sensor noise, through intra-only H.264
    (so every frame carries its own codec noise; inter coding would skip the still blocks)."""
    photo = face_photo(testdata)
    still = face_scene(photo, 176, 3.0, (288, 320), (160.0, 140.0))
    rng = np.random.default_rng(0)
    frames = [np.clip(still + rng.normal(0, 3.0, still.shape), 0, 255).astype(np.uint8)
              for _ in range(n)]
    return write_clip(path, frames, codec="libx264", pix_fmt="yuv420p",
                      options={"crf": "18", "preset": "veryfast", "g": "1"})


def test_static_scene_flicker_identity_restorer(testdata, tmp_path):
    src = _noisy_still(testdata, tmp_path / "still.mp4")
    out = tmp_path / "out.mov"
    seen, observer = _observe()
    pipeline.run(run_options(testdata, src, out, backend="identity", codec="png"),
                 observer=observer)
    a = [f.image for f in read_frames(src)]
    b = [f.image for f in read_frames(out)]
    cover = mask_union(seen[30], a[30].shape)
    core = cover >= 0.999
    assert all(len(seen[i]) == 1 for i in range(60)) and core.sum() > 3000
    flicker_in, flicker_out = flicker(a, core), flicker(b, core)
    # temporal smoothing leaves an unchanged face alone: only the paste round trip may add
    assert flicker_out <= 1.05 * flicker_in, (flicker_in, flicker_out)


# ------------------------------------------------------------------ 4. every real clip


@pytest.mark.parametrize("name", ["keep_synthetic_1", "liveportrait_d0", "liveportrait_d11",
                                  "liveportrait_d13", "liveportrait_d18", "liveportrait_s18"])
def test_real_clip_first_frames_change_only_inside_masks(testdata, tmp_path, small_gpen, name):
    clip = testdata / "videos" / f"{name}.mp4"
    out = tmp_path / "out.mov"
    seen, observer = _observe()
    summary = pipeline.run(run_options(testdata, clip, out, model=small_gpen, codec="png",
                                       frames=(0, 11)), observer=observer)
    src = read_frames(clip)[:12]
    got = read_frames(out)
    assert [f.pts * f.time_base for f in got] == [f.pts * f.time_base for f in src]
    assert summary.frames == 12 and summary.faces >= 10  # one face in every clip
    for a, b in zip(src, got, strict=True):
        outside = mask_union(seen[a.index], a.image.shape) == 0
        assert np.array_equal(a.image[outside], b.image[outside])
        assert not np.array_equal(a.image, b.image) or not seen[a.index]


def _full_clip_checks(testdata: Path, clip: Path, out: Path, model: Path) -> None:
    from tests.media_helpers import stream_packets, video_packet_times

    summary = pipeline.run(run_options(testdata, clip, out, model=model))
    src_frames = read_frames(clip)
    out_frames = read_frames(out)
    assert summary.frames == len(src_frames) == len(out_frames)
    assert [f.pts * f.time_base for f in out_frames] == [f.pts * f.time_base for f in src_frames]
    assert [t for t, _ in video_packet_times(out)] == [t for t, _ in video_packet_times(clip)]
    assert stream_packets(out, "audio") == stream_packets(clip, "audio")
    assert summary.faces > 0.8 * summary.frames


def test_full_clip_keeps_frames_timestamps_and_audio(testdata, tmp_path, small_gpen):
    _full_clip_checks(testdata, testdata / "videos" / "liveportrait_d18.mp4",
                      tmp_path / "out.mp4", small_gpen)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keep_synthetic_1", "liveportrait_d0", "liveportrait_d11",
                                  "liveportrait_d13", "liveportrait_s18"])
def test_every_real_clip_in_full(testdata, tmp_path, small_gpen, name):
    _full_clip_checks(testdata, testdata / "videos" / f"{name}.mp4", tmp_path / "out.mp4",
                      small_gpen)


# ------------------------------------------------------------------ 5. no faces; many faces


def test_clip_without_faces_is_unchanged_and_says_0_faces(testdata, tmp_path, small_gpen):
    yy, xx = np.mgrid[0:144, 0:192].astype(np.float32)
    frames = [np.stack([128 + 60 * np.sin(xx / 11 + i / 4), 128 + 50 * np.cos(yy / 9 - i / 5),
                        (xx + yy + 3 * i) % 200], -1).astype(np.uint8) for i in range(12)]
    src = write_clip(tmp_path / "noface.mov", frames)
    out = tmp_path / "out.mov"
    stderr = io.StringIO()
    summary = pipeline.run(run_options(testdata, src, out, model=small_gpen, codec="png",
                                       progress="bar"), stdout=stderr, stderr=stderr)
    assert summary.faces == 0 and summary.frames == 12
    assert " 0 faces" in stderr.getvalue()
    for a, b in zip(read_frames(src), read_frames(out), strict=True):
        assert np.array_equal(a.image, b.image)


def test_many_small_faces(testdata, tmp_path, small_gpen):
    import cv2

    group = cv2.imread(str(testdata / "images" / "gpen_Solvay_conference_1927.png"),
                       cv2.IMREAD_COLOR)
    group = cv2.cvtColor(group, cv2.COLOR_BGR2RGB)[:, :1328 // 2 * 2]
    frames = [np.roll(group, 2 * i, axis=1) for i in range(6)]  # a slow pan
    src = write_clip(tmp_path / "group.mov", frames)
    out = tmp_path / "out.mov"
    seen, observer = _observe()
    summary = pipeline.run(run_options(testdata, src, out, model=small_gpen, codec="png",
                                       batch=16, detect=_full_size_detect(testdata)),
                           observer=observer)
    assert summary.tracks >= 10 and min(len(v) for v in seen.values()) >= 10
    assert summary.faces == sum(len(v) for v in seen.values())
    for a, b in zip(read_frames(src), read_frames(out), strict=True):
        outside = mask_union(seen[a.index], a.image.shape) == 0
        assert np.array_equal(a.image[outside], b.image[outside])


def test_faces_largest_keeps_one_face_per_frame(testdata, tmp_path):
    import cv2

    group = cv2.imread(str(testdata / "images" / "codeformer_whole_00.jpg"), cv2.IMREAD_COLOR)
    group = cv2.cvtColor(group, cv2.COLOR_BGR2RGB)[:310 // 2 * 2, :491 // 2 * 2]
    src = write_clip(tmp_path / "group.mov", [group] * 4)
    seen, observer = _observe()
    summary = pipeline.run(run_options(testdata, src, tmp_path / "out.mov", backend="identity",
                                       codec="png", faces="largest"), observer=observer)
    assert summary.frames == 4 and summary.faces == 4 and summary.tracks == 1
    assert all(len(v) == 1 for v in seen.values())


def _full_size_detect(testdata: Path):
    from gpen_video.options import DetectOptions

    return DetectOptions(network="mobile0.25", device="cpu", max_side=1400,
                         weights=testdata / "weights" / "detection_mobilenet0.25_Final.pth")


# ------------------------------------------------------------------ 6. Ctrl-C


def test_ctrl_c_stops_fast_and_leaves_nothing(testdata, tmp_path, small_gpen):
    """Readiness, not timing: Ctrl-C is sent once the run reports progress (its partial output
    exists), and the only wall-clock bound is a generous one that catches a hang — on a busy
    2-core box the process may need seconds to be scheduled at all. The exit itself does not
    depend on load: the watchdog armed by the signal ends the process 2 s after it at the
    latest (gpen_video.shutdown)."""
    clip = testdata / "videos" / "liveportrait_d11.mp4"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "restored.mp4"
    cmd = [sys.executable, "-m", "gpen_video", str(clip), str(out), "--model", str(small_gpen),
           "--backend", "onnxruntime", "--detector-weights",
           str(testdata / "weights" / "detection_mobilenet0.25_Final.pth"), "--device", "cpu",
           "--progress", "plain"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    try:
        for line in proc.stdout:  # wait until frames are being written
            if line.startswith("Progress: ") and int(line.split()[1].rstrip("%")) >= 3:
                break
        else:
            pytest.fail("no progress before the end: " + proc.stderr.read())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


# ------------------------------------------------------------------ closing summary


def test_summary_says_codec_in_and_out_and_what_happened_to_the_audio(testdata, tmp_path):
    from tests.media_helpers import AudioSpec, VideoSpec, make_video

    tone = AudioSpec(codec="pcm_mulaw", rate=8000, layout="mono", seconds=0.2)
    src = make_video(tmp_path / "m4.mov", VideoSpec(n=4, width=128, height=96, codec="mpeg4",
                                                    audio=[tone]))
    runs = {"out.mp4": ("MPEG-4 Part 2 (mpeg4) → h264 (no MPEG-4 Part 2 encoder here",
                        "audio pcm_mulaw converted to aac"),
            "out.mov": ("MPEG-4 Part 2 (mpeg4) → h264 (", "audio pcm_mulaw copied"),
            "ffv1.mkv": ("→ ffv1 (--codec)", "audio pcm_mulaw converted to pcm_s16le")}
    for name, (video, audio) in runs.items():
        stdout = io.StringIO()
        summary = pipeline.run(run_options(testdata, src, tmp_path / name, backend="identity",
                                           progress="plain",
                                           codec="ffv1" if name == "ffv1.mkv" else None),
                               stdout=stdout, stderr=stdout)
        assert video in summary.video and audio in summary.audio, (summary.video, summary.audio)
        assert f"video: {summary.video}; audio and subtitles: {summary.audio}" in stdout.getvalue()
