"""Tracker, cut detector, smoother and the streaming FaceStream, on synthetic detections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpen_video.faces import (
    FFHQ_TEMPLATE_512,
    CutDetector,
    Detection,
    FaceStream,
    FaceTracker,
    FrameFaces,
    TrackSmoother,
    apply_affine,
    invert_affine,
    params_to_matrix,
    similarity_to_template,
)
from gpen_video.options import SmoothOptions, TrackOptions

IOD = 40.0


def face_at(cx: float, cy: float, iod: float = IOD, angle: float = 0.0, score: float = 0.999,
            noise: np.ndarray | None = None) -> Detection:
    """A detection whose landmarks are the template, scaled to ``iod``, centred at (cx, cy)."""
    k = iod / 107.39
    c, s = math.cos(angle), math.sin(angle)
    centred = (FFHQ_TEMPLATE_512 - FFHQ_TEMPLATE_512.mean(axis=0)) * k
    points = centred @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])
    if noise is not None:
        points = points + noise
    box = np.array([cx - 1.2 * iod, cy - 1.5 * iod, cx + 1.2 * iod, cy + 1.3 * iod])
    return Detection(box, score, points)


def run(stream: FaceStream, detections: list, cuts: set[int] = frozenset()) -> list[FrameFaces]:
    out: list[FrameFaces] = []
    for k, dets in enumerate(detections):
        out += stream.push(dets, cut=k in cuts)
    return out + stream.flush()


def ids_by_frame(out: list[FrameFaces]) -> dict[int, dict[int, np.ndarray]]:
    return {ff.frame_index: {f.track_id: f.landmarks.mean(axis=0) for f in ff.faces}
            for ff in out}


# -- tracker -----------------------------------------------------------------------------------

def test_tracker_keeps_ids_of_crossing_faces() -> None:
    tracker = FaceTracker(TrackOptions())
    seen: dict[int, set[int]] = {}
    for k in range(40):
        a = face_at(50 + 8 * k, 100)
        b = face_at(370 - 8 * k, 110)
        step = tracker.update(k, [b, a] if k % 2 else [a, b])
        for track_id, det in step.hits.items():
            identity = 0 if det is a else 1
            seen.setdefault(track_id, set()).add(identity)
    assert len(seen) == 2 and all(len(v) == 1 for v in seen.values())


def test_tracker_confirms_drops_and_ends() -> None:
    options = TrackOptions(confirm_hits=3, max_misses=4)
    tracker = FaceTracker(options)
    steps = [tracker.update(k, [face_at(100, 100, score=0.95)]
                            + ([face_at(300, 100, score=0.95)] if k < 2 else []))
             for k in range(4)]
    assert steps[0].started and not steps[0].confirmed
    assert len(steps[2].confirmed) == 1  # the steady face, on its third hit
    dropped = [e for s in steps for e in s.ended]
    assert len(dropped) == 1 and dropped[0].reason == "dropped" and not dropped[0].confirmed
    # the confirmed face: 4 misses are tolerated, the 5th ends it
    ends = [tracker.update(k, []) for k in range(4, 9)]
    assert all(not s.ended for s in ends[:4])
    assert ends[4].ended[0].reason == "misses" and ends[4].ended[0].last_hit == 3


def test_tracker_frames_without_detection_are_not_misses() -> None:
    tracker = FaceTracker(TrackOptions(max_misses=2))
    for k in range(3):
        tracker.update(k, [face_at(100 + 5 * k, 100)])
    for k in range(3, 12):
        assert not tracker.update(k, None).ended
    step = tracker.update(12, [face_at(100 + 5 * 12, 100)])  # predicted through the skips
    assert list(step.hits) == [1]


def test_tracker_cut_ends_everything() -> None:
    tracker = FaceTracker(TrackOptions())
    for k in range(5):
        tracker.update(k, [face_at(100, 100)])
    step = tracker.update(5, [face_at(100, 100)], cut=True)
    assert [e.reason for e in step.ended] == ["cut"]
    assert step.started and step.started[0] != step.ended[0].track_id


# -- cut detector ------------------------------------------------------------------------------

def _texture(seed: int, size: tuple[int, int] = (360, 640)) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(size[0] // 20, size[1] // 20, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC), 0,
                   255).astype(np.uint8)


def test_cut_detector_finds_hard_cuts_not_motion() -> None:
    a, b = _texture(1, (360, 1280)), _texture(2, (360, 1280))
    detector = CutDetector(threshold=30.0)
    cuts = []
    for k in range(60):
        source, x = (a, 2 * k) if k < 30 else (b, 8 * k)  # slow pan, cut, fast pan
        if detector.update(np.ascontiguousarray(source[:, x:x + 640])):
            cuts.append(k)
    assert cuts == [30]


def test_cut_detector_deep_frames_and_size_change() -> None:
    a = _texture(3).astype(np.uint16) * 257
    b = _texture(4).astype(np.uint16) * 257
    detector = CutDetector()
    assert [detector.update(f) for f in (a, a, b, b)] == [False, False, True, False]
    assert detector.update(_texture(4, (180, 320)))  # another frame size: a new shot


# -- smoother ----------------------------------------------------------------------------------

def test_smoother_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        TrackSmoother("gaussian")
    smoother = TrackSmoother("rts")
    with pytest.raises(ValueError):
        smoother.add(0, None)
    smoother.add(0, np.zeros(4))
    with pytest.raises(ValueError):
        smoother.add(2, np.zeros(4))


def test_smoother_reduces_noise_on_a_still_face_and_unwraps_angles() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([3.0, 2.0, 1.5, math.pi - 0.01])
    smoother = TrackSmoother("rts")
    measured = []
    for k in range(60):
        z = truth + rng.normal(0, 0.01, 4)
        z[3] = (z[3] + math.pi) % (2 * math.pi) - math.pi  # wraps around ±π
        measured.append(z)
        smoother.add(k, z)
    estimate = np.array([smoother.estimate(k) for k in range(60)])
    assert np.all(np.abs(np.diff(estimate[:, 3])) < 0.05)  # continuous through ±π
    raw_error = np.abs(np.unwrap(np.array(measured)[:, 3]) - truth[3]).mean()
    assert np.abs(estimate[:, 3] - truth[3]).mean() < 0.5 * raw_error
    assert np.abs(estimate[:, :3] - truth[:3]).mean() < 0.5 * np.abs(
        np.array(measured)[:, :3] - truth[:3]).mean()


def test_smoother_follows_a_sudden_pan() -> None:
    """A velocity step (hold → fast pan) is followed without the corner being averaged away."""
    rng = np.random.default_rng(1)
    truth = [np.array([0.0, 0.0, 0.0, 0.0]) if k < 20 else np.array([0.5 * (k - 20), 0, 0, 0])
             for k in range(40)]
    smoother = TrackSmoother("rts")
    for k, t in enumerate(truth):
        smoother.add(k, t + rng.normal(0, 0.01, 4))
    errors = [abs(smoother.estimate(k, k + 12)[0] - truth[k][0]) for k in range(40)]
    assert max(errors) < 0.05  # 5 % of an inter-ocular distance
    assert smoother.maneuvers >= 1


# -- the stream --------------------------------------------------------------------------------

def test_every_frame_comes_out_once_in_order_after_the_delay() -> None:
    stream = FaceStream(fps=25.0)
    assert stream.delay >= math.ceil(0.5 * 25)
    popped_at: dict[int, int] = {}
    for k in range(50):
        for ff in stream.push([face_at(200 + k, 150)] if k % 7 else []):
            popped_at[ff.frame_index] = k
    for ff in stream.flush():
        popped_at[ff.frame_index] = 50
    assert sorted(popped_at) == list(range(50))
    assert all(popped_at[f] == f + stream.delay for f in range(50 - stream.delay))
    with pytest.raises(RuntimeError):
        stream.push([])


def test_output_is_final_and_only_looks_lag_frames_ahead() -> None:
    """What a frame gets does not depend on anything pushed after it left the stream, and the
    smoothing uses exactly `lag` frames of look-ahead."""
    rng = np.random.default_rng(2)
    base = [[face_at(200 + 3 * k, 150, noise=rng.normal(0, 0.5, (5, 2)))] for k in range(60)]
    other = base[:40] + [[face_at(400 - 5 * k, 100)] for k in range(20)]
    a, b = FaceStream(), FaceStream()
    out_a = [ff for dets in base for ff in a.push(dets)]
    out_b = [ff for dets in other for ff in b.push(dets)]
    n = 40 - a.delay
    for fa, fb in zip(out_a[:n], out_b[:n]):
        np.testing.assert_array_equal(fa.faces[0].matrix, fb.faces[0].matrix)
    # a stream whose delay is longer than its lag gives the same frames
    longer = FaceStream(TrackOptions(max_misses=30))
    assert longer.delay > a.delay and longer.lag == a.lag
    out_c = run(longer, base)
    for fa, fc in zip(out_a, out_c):
        np.testing.assert_allclose(fa.faces[0].matrix, fc.faces[0].matrix, atol=1e-12)


def test_unconfirmed_tracks_are_never_emitted() -> None:
    """A two-frame blip of middling score (0.95) in mid-clip is not a face worth restoring."""
    dets = [[face_at(100, 100)] + ([face_at(400, 300, score=0.95)] if k in (10, 11) else [])
            for k in range(40)]
    out = run(FaceStream(), dets)
    ids = {f.track_id for ff in out for f in ff.faces}
    assert len(ids) == 1
    assert all(len(ff.faces) == 1 and ff.faces[0].confirmed for ff in out)


def test_gap_is_filled_with_the_same_id() -> None:
    dets = [[] if 20 <= k < 25 else [face_at(100 + 4 * k, 120)] for k in range(50)]
    out = run(FaceStream(), dets)
    assert all(len(ff.faces) == 1 for ff in out)
    assert len({ff.faces[0].track_id for ff in out}) == 1
    for ff in out[20:25]:
        face = ff.faces[0]
        assert not face.detected and face.score == 0.0
        # interpolated: where the face would have been
        np.testing.assert_allclose(face.landmarks.mean(axis=0),
                                   face_at(100 + 4 * ff.frame_index, 120).landmarks.mean(axis=0),
                                   atol=1.0)


def test_paste_ramps() -> None:
    ramp = 5
    dets = [([face_at(100, 100)] if k < 60 else [])  # from the shot's start, lost at 60
            + ([face_at(400, 300)] if k >= 20 else [])  # appears mid-shot, cut at 80
            for k in range(80)]
    dets += [[face_at(400, 300)] for _ in range(20)]
    out = run(FaceStream(ramp_frames=ramp), dets, cuts={80})
    first = {f.frame_index: f for ff in out for f in ff.faces if f.track_id == 1}
    second = {f.frame_index: f for ff in out for f in ff.faces if f.track_id == 2}
    # track 1 starts with the stream: no fade in; lost by misses: fades out over its last frames
    assert first[0].is_start and first[0].alpha_hint == 1.0
    assert max(first) == 59 and first[59].is_end and first[59].frames_to_end == 0
    assert [round(first[k].alpha_hint * (ramp + 1)) for k in range(55, 60)] == [5, 4, 3, 2, 1]
    # track 2 appears mid-shot: fades in; ends at the cut: no fade out, and no frame after it
    assert second[20].is_start and second[20].alpha_hint == pytest.approx(1 / (ramp + 1))
    assert [round(second[k].alpha_hint * (ramp + 1)) for k in range(20, 26)] == [1, 2, 3, 4, 5, 6]
    assert max(second) == 79 and second[79].is_end and second[79].alpha_hint == 1.0
    after = {f.track_id for ff in out if ff.frame_index >= 80 for f in ff.faces}
    assert after and after.isdisjoint({1, 2})
    assert [ff.frame_index for ff in out if ff.cut] == [80]


def test_no_smoothing_across_a_cut() -> None:
    rng = np.random.default_rng(3)
    dets = [[face_at(100 + 3 * k, 150, noise=rng.normal(0, 0.8, (5, 2)))] for k in range(60)]
    together = run(FaceStream(), dets, cuts={30})
    alone = run(FaceStream(), dets[30:])
    for a, b in zip(together[30:], alone):
        np.testing.assert_array_equal(a.faces[0].matrix, b.faces[0].matrix)


def test_detect_every_n_predicts_in_between() -> None:
    every = 3
    truth = [face_at(100 + 6 * k, 150 + 2 * k) for k in range(60)]
    dets = [[truth[k]] if k % every == 0 else None for k in range(60)]
    stream = FaceStream(detect_every=every)
    assert stream.delay >= every * (TrackOptions().max_misses + 1)
    out = run(stream, dets)
    assert all(len(ff.faces) == 1 for ff in out)
    for ff in out:
        face = ff.faces[0]
        assert face.detected == (ff.frame_index % every == 0)
        np.testing.assert_allclose(face.matrix, similarity_to_template(
            truth[ff.frame_index].landmarks, 512), atol=0.05)


def test_methods_and_crop_sizes() -> None:
    rng = np.random.default_rng(4)
    dets = [[face_at(200, 150, noise=rng.normal(0, 1.0, (5, 2)))] for _ in range(40)]
    none = run(FaceStream(smooth=SmoothOptions(method="none"), crop_size=256), dets)
    for ff, d in zip(none, dets):
        np.testing.assert_allclose(ff.faces[0].matrix,
                                   similarity_to_template(d[0].landmarks, 256), atol=1e-9)
        np.testing.assert_allclose(params_to_matrix(ff.faces[0].params, 512), 2 * ff.faces[0].matrix,
                                   atol=1e-9)
    centre = np.array([[256.0, 256.0]])
    spread = {}
    for method in ("none", "kalman", "rts"):
        out = run(FaceStream(smooth=SmoothOptions(method=method)), dets)
        points = np.array([apply_affine(invert_affine(ff.faces[0].matrix), centre)[0] for ff in out])
        spread[method] = points.std(axis=0).mean()
    assert spread["rts"] < spread["kalman"] < spread["none"]
    with pytest.raises(ValueError):
        FaceStream(smooth=SmoothOptions(method="median"))


def _decode(path, count: int) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def test_cut_detector_on_real_clips(testdata) -> None:
    """No cut inside real single-shot clips (talking heads, head turns, a degraded clip); one
    where two of them are spliced."""
    videos = testdata / "videos"
    d0 = _decode(videos / "liveportrait_d0.mp4", 40)
    d11 = _decode(videos / "liveportrait_d11.mp4", 60)
    degraded = _decode(videos / "keep_synthetic_1.mp4", 120)
    for clip in (d0, d11, degraded):
        detector = CutDetector()
        assert not any(detector.update(f) for f in clip)
    detector = CutDetector()
    spliced = d0[:30] + d11[:30]
    assert [k for k, f in enumerate(spliced) if detector.update(f)] == [30]


# -- short clips and short-lived faces ----------------------------------------------------------

@pytest.mark.parametrize("frames", [1, 2])
def test_face_of_a_one_or_two_frame_clip_is_emitted_at_full_strength(frames) -> None:
    """Middling score (0.95): confirmed because the clip ended while it was still seen."""
    out = run(FaceStream(), [[face_at(100, 100, score=0.95)]] * frames)
    assert [len(ff.faces) for ff in out] == [1] * frames
    assert all(f.alpha_hint == 1.0 for ff in out for f in ff.faces)


def test_face_still_seen_when_a_shot_ends_is_emitted() -> None:
    dets = [[face_at(100, 100)]] * 20 + [[face_at(300, 200, score=0.95)]] * 2 + [[]] * 20
    out = run(FaceStream(), dets, cuts={20, 22})
    assert [len(out[k].faces) for k in (20, 21)] == [1, 1]
    assert all(not ff.faces for ff in out[22:])


def test_tentative_track_missed_before_the_end_is_not_emitted() -> None:
    dets = [[face_at(100, 100, score=0.95)], []]
    out = run(FaceStream(), dets)
    assert all(not ff.faces for ff in out)


def test_one_sure_detection_in_mid_clip_is_emitted() -> None:
    """Score 0.999 ≥ confirm_score: a face seen once in a long clip is restored on that frame."""
    dets = [[face_at(100, 100)] + ([face_at(400, 300, score=0.999)] if k == 10 else [])
            for k in range(40)]
    out = run(FaceStream(), dets)
    assert [len(ff.faces) for ff in out].count(2) == 1 and len(out[10].faces) == 2
    off = run(FaceStream(TrackOptions(confirm_score=None)), dets)
    assert all(len(ff.faces) == 1 for ff in off)
