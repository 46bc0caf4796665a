"""Tracked detection (``DetectOptions.mode == "tracked"``): windows around tracked faces,
periodic and tiled full scans, with the real RetinaFace MobileNet-0.25 on rendered frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gpen_video.faces import FaceStream
from gpen_video.faces.align import similarity_to_template, template_points, umeyama
from gpen_video.faces.analyse import FaceAnalyser, detect_every, stream_detect_every
from gpen_video.faces.detect import FaceDetector
from gpen_video.faces.scan_plan import plan_scan, scan_scale
from gpen_video.faces.schedule import ScanSchedule
from gpen_video.faces.window_detect import WindowDetector, WindowJob, _similarity_batch
from gpen_video.options import DetectOptions


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _options(testdata: Path, **kw) -> DetectOptions:
    return DetectOptions(network="mobile0.25", device="cpu",
                         weights=testdata / "weights" / "detection_mobilenet0.25_Final.pth", **kw)


def _analyse(frames: list[np.ndarray], options: DetectOptions, fps: float, batch: int = 4,
             number: int = 0):
    """Every frame through a FaceAnalyser, ``batch`` frames at a time; the output per frame.
    ``number``: the clip's frame number of ``frames[0]`` (a chunk starts later)."""
    stream = FaceStream(fps=fps, crop_size=256, detect_every=stream_detect_every(options, fps))
    analyser = FaceAnalyser(FaceDetector(options), stream, options, fps=fps)
    out = []
    for start in range(0, len(frames), batch):
        out += analyser.push(frames[start:start + batch], number + start)
    out += analyser.flush()
    assert [ff.frame_index for ff in out] == list(range(len(frames)))
    return out


# -- plans and schedule (no network) -----------------------------------------------------------

def test_scan_plan_one_image_when_it_fits_and_tiles_at_4k():
    assert scan_scale(24) == 0.5 and scan_scale(6) == 1.0
    one = plan_scan(1280, 720, 24)
    assert len(one) == 1 and one[0].size == (640, 360) and one[0].region == (0, 0, 1280, 720)
    parts = plan_scan(3840, 2160, 24, tile_side=640)
    overview, tiles = parts[0], parts[1:]
    assert overview.region == (0, 0, 3840, 2160) and overview.size == (640, 360)
    assert len(tiles) > 4
    covered = np.zeros((2160, 3840), dtype=bool)
    for part in tiles:
        x0, y0, x1, y1 = part.region
        assert part.scale[0] == pytest.approx(0.5, abs=0.01)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # neighbouring tiles share at least the stated overlap (96 scan px = 192 frame px)
    xs = sorted({p.region[0] for p in tiles})
    assert all(b - a <= (tiles[0].region[2] - tiles[0].region[0]) - 192
               for a, b in zip(xs, xs[1:]))


def test_schedule_spreads_a_tiled_scan_and_restarts_when_a_face_is_lost():
    schedule = ScanSchedule(every=6, min_iod=24)
    shape = (2160, 3840, 3)
    n = len(schedule.plan(shape))
    assert len(schedule.parts_for(0, shape, shot_start=True)) == n  # whole plan at once
    per_frame = [len(schedule.parts_for(i, shape, False)) for i in range(1, 13)]
    assert sum(per_frame[5:11]) == n and max(per_frame) < n  # spread over one cycle
    schedule.lost([np.array([3500.0, 1900.0, 3560.0, 1980.0])])
    first = schedule.parts_for(13, shape, False)  # the tile holding the lost face comes first
    assert first[0].region == (0, 0, 3840, 2160)
    x0, y0, x1, y1 = first[1].region
    assert x0 <= 3530 < x1 and y0 <= 1940 < y1
    small = ScanSchedule(every=5, min_iod=24)
    got = [len(small.parts_for(i, (360, 640, 3), i == 0)) for i in range(11)]
    assert got == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_scan_cycles_follow_frame_numbers_not_where_a_stream_starts():
    """A stream that starts at frame 28 (a chunk) scans on the frames a stream from frame 0
    scans on, from its first full cycle on; a shot that starts mid-cycle scans whole at once and
    rejoins the cycles; a restart after a lost face spreads up to a boundary ≥ every/2 away."""
    shape = (360, 640, 3)
    whole = ScanSchedule(every=12, min_iod=24)
    chunk = ScanSchedule(every=12, min_iod=24)
    scanned_whole = [i for i in range(80) if whole.parts_for(i, shape, i == 0)]
    scanned_chunk = [i for i in range(28, 80) if chunk.parts_for(i, shape, i == 28)]
    assert scanned_whole == [0, 12, 24, 36, 48, 60, 72]
    assert scanned_chunk == [28, 36, 48, 60, 72]
    tiled = ScanSchedule(every=12, min_iod=24)
    shape4k = (2160, 3840, 3)
    n = len(tiled.plan(shape4k))
    assert len(tiled.parts_for(0, shape4k, True)) == n
    assert sum(len(tiled.parts_for(i, shape4k, False)) for i in range(1, 12)) == 0
    tiled.lost([np.array([100.0, 100.0, 160.0, 180.0])])
    spread = [len(tiled.parts_for(i, shape4k, False)) for i in range(20, 48)]
    # frames 20-35: the boundary at 24 is under 6 frames away, so up to the one at 36
    assert spread[0] > 0 and sum(spread[:16]) == n
    assert spread[16] > 0 and sum(spread[16:]) == n  # frame 36 starts the next fixed cycle


def test_detect_every_defaults():
    assert detect_every(DetectOptions(), 25.0) == 12
    assert detect_every(DetectOptions(), 30.0) == 15
    assert detect_every(DetectOptions(mode="full"), 30.0) == 1
    assert detect_every(DetectOptions(every=3), 30.0) == 3
    assert stream_detect_every(DetectOptions(every=3), 30.0) == 1
    assert stream_detect_every(DetectOptions(mode="full", every=3), 30.0) == 3


def test_batched_similarity_is_the_umeyama_fit():
    import torch

    rng = np.random.default_rng(1)
    points = rng.uniform(0, 300, size=(6, 5, 2))
    template = rng.uniform(0, 200, size=(5, 2))
    got = _similarity_batch(torch.tensor(points), torch.tensor(template)).numpy()
    for n in range(6):
        np.testing.assert_allclose(got[n], umeyama(points[n], template), atol=1e-9)


# -- with the detector --------------------------------------------------------------------------

def _photo(testdata: Path) -> np.ndarray:
    """The FFHQ-aligned face photo the synthetic scenes are made of, RGB."""
    return cv2.cvtColor(cv2.imread(str(testdata / "images" / "gpen_ffhq-10_00004.png")),
                        cv2.COLOR_BGR2RGB)


def _solvay(testdata: Path) -> np.ndarray:
    bgr = cv2.imread(str(testdata / "images" / "gpen_Solvay_conference_1927.png"))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_window_pass_reproduces_the_refinement_pass(testdata, one_thread):
    """A one-pass window of the refine size gives what FaceDetector.refine gives (same crop,
    same network; sampled on the device with grid_sample instead of cv2.warpAffine)."""
    image = _solvay(testdata)
    detector = FaceDetector(_options(testdata, max_side=0, refine=0))
    faces = detector.detect_one(image)[:6]
    refined = detector.refine([image], [faces])[0]
    windows = WindowDetector(detector, scale=288, crops=(288,), first_gate=0.5)
    got = windows.run([image], [WindowJob(0, f.landmarks) for f in faces], []).windows
    for mine, theirs in zip(got, refined):
        assert mine is not None
        assert np.abs(mine.landmarks - theirs.landmarks).max() < 0.1 * theirs.inter_ocular


def test_solvay_in_4k_all_29_faces_tracked_by_frame_k_plus_1(testdata, one_thread):
    """The Solvay photograph (×2, faces 30–40 px between the eyes) in a 3840×2160 frame,
    drifting 2 px per frame; default options (10 fps: K = 5 frames)."""
    image = _solvay(testdata)
    detector = FaceDetector(_options(testdata, max_side=0, refine=0))
    truth = [f.landmarks for f in detector.detect_one(image)]
    assert len(truth) == 29
    big = cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    fps = 10.0
    k = detect_every(DetectOptions(), fps)
    frames, offsets = [], []
    for i in range(k + 2):
        canvas = np.full((2160, 3840, 3), 90, dtype=np.uint8)
        x, y = 400 + 2 * i, 500 + i
        canvas[y:y + big.shape[0], x:x + big.shape[1]] = big
        frames.append(canvas)
        offsets.append(np.array([x, y], dtype=np.float64))
    out = _analyse(frames, _options(testdata), fps, batch=k + 2)
    faces = out[k + 1].faces
    assert len(faces) == 29
    for points in truth:  # every true face is one of the tracked ones
        expected = (points + 0.5) * 2.0 - 0.5 + offsets[k + 1]
        err = min(np.abs(f.landmarks - expected).mean() for f in faces)
        assert err < 4.0


def test_a_face_entering_at_frame_20_is_tracked_by_frame_20_plus_k(testdata, one_thread):
    """A face pasted into a still background from frame 20 on (25 fps: K = 12)."""
    face = _photo(testdata)
    face = cv2.resize(face, (150, 150), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(3)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (0, 0), 6)
    fps = 25.0
    k = detect_every(DetectOptions(), fps)
    frames = []
    for i in range(20 + k + 4):
        frame = bg.copy()
        if i >= 20:
            x = 300 + 2 * (i - 20)
            frame[100:250, x:x + 150] = face
        frames.append(frame)
    out = _analyse(frames, _options(testdata), fps)
    present = [i for i, ff in enumerate(out) if ff.faces]
    assert present and present[0] >= 20  # nothing before it entered
    assert set(range(20 + k, len(frames))) <= set(present)
    assert all(len(out[i].faces) == 1 for i in present)


def test_a_round_reads_back_once_after_every_forward(testdata, one_thread, monkeypatch):
    """Device-friendliness, checked on the CPU: during a round (windows with 3 passes and a
    scan), no tensor is read by the host (``item``, ``tolist``, ``numpy``, ``bool``, ``int``,
    ``float``) before the single ``cpu()`` copy, and no forward pass runs after it."""
    import torch

    image = _solvay(testdata)[:, :640]
    # the torch runtime: the device path (onnxruntime runs on the host by design)
    detector = FaceDetector(_options(testdata, max_side=0, refine=0, runtime="torch"))
    faces = detector.detect_one(image)
    assert faces
    windows = WindowDetector(detector, 288, (288, 192, 192), first_gate=2.0)
    # what a GPU runs: grid_sample on the device (on the CPU OpenCV warps the windows straight
    # from host memory, where reading a tensor costs no sync)
    windows.host_windows = False
    jobs = [WindowJob(i, f.landmarks) for i in range(2) for f in faces]
    from gpen_video.faces.window_detect import ScanJob

    scans = [ScanJob(0, part) for part in plan_scan(640, image.shape[0], 24)]
    windows.run([image, image], jobs, scans)  # priors cached
    events: list[str] = []

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            events.append(name)
            return original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, wrapper)

    for name in ("cpu", "item", "tolist", "numpy", "__bool__", "__int__", "__float__"):
        spy(name)
    forward = detector.model.forward

    def counted(*args, **kwargs):
        events.append("forward")
        return forward(*args, **kwargs)
    monkeypatch.setattr(detector.model, "forward", counted)
    result = windows.run([image, image], jobs, scans)
    assert events.count("cpu") == 1
    first = events.index("cpu")
    assert set(events[:first]) == {"forward"} and events[:first].count("forward") == 4
    assert "forward" not in events[first:]
    assert sum(r is not None for r in result.windows) == len(jobs)


def test_a_chunk_tracks_what_a_whole_clip_run_tracks(testdata, one_thread):
    """Tracked detection in a chunk (``--workers``, the farm): the analyser starts at frame 28
    of the clip, mid scan cycle, with one face already moving, and the chunk writes from frame
    28 + lead (the product's margin, :func:`chunk_margins`) on. There it reports the faces of a
    run from frame 0: the same faces on every frame; a second face entering at frame 125 found
    on the same frame (the scan cycles follow frame numbers; counted from the chunk's start they
    would scan 4 frames later); alignment within 0.05 px of a 256 crop (the chunk's windows
    follow its own tracks' predictions, rebuilt over the lead: RESULTS.md, "`--workers N` and farm
    chunks")."""
    from gpen_video.farm.warmup import chunk_margins
    from gpen_video.options import RunOptions
    from tests.pipeline_helpers import face_scene

    photo = _photo(testdata)
    rng = np.random.default_rng(5)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (0, 0), 6)
    options, fps, start, enters = _options(testdata), 25.0, 28, 125
    lead = chunk_margins(RunOptions(input=Path("-"), output=Path("-"), detect=options), fps).lead
    first_written = start + lead
    assert first_written < enters and start % 4 == 0 and start % detect_every(options, fps)
    frames = []
    for i in range(enters + 30):
        frame = face_scene(photo, 150, 3.0 * np.sin(i / 9), (360, 640),
                           (190 + 1.2 * np.sin(i / 20) * 100, 180), background=bg)
        if i >= enters:
            frame = face_scene(photo, 110, -4.0, (360, 640), (540, 150 + 0.5 * (i - enters)),
                               background=frame)
        frames.append(frame)
    whole = _analyse(frames, options, fps)
    chunk = _analyse(frames[start:], options, fps, number=start)
    first_two, worst = {}, 0.0
    for f in range(first_written, len(frames)):
        a, b = whole[f].faces, chunk[f - start].faces
        assert len(a) == len(b) >= 1, f
        for name, faces in (("whole", a), ("chunk", b)):
            if len(faces) == 2:
                first_two.setdefault(name, f)
        for x, y in zip(sorted(a, key=lambda t: t.params.cx),
                        sorted(b, key=lambda t: t.params.cx)):
            worst = max(worst, float(np.abs(x.matrix - y.matrix)[:, 2].max()))
    assert enters <= first_two["whole"] == first_two["chunk"] < enters + detect_every(options, fps)
    assert worst < 0.05, worst


def test_first_windows_snap_to_a_lattice_within_half_a_step():
    """:func:`snap_window`: nearby predictions give the same window; the window moves by at
    most half a lattice step in centre, scale and angle; a reflection is left alone."""
    from gpen_video.faces.align import apply_affine, invert_affine
    from gpen_video.faces.window_detect import SNAP_SHIFT, SNAP_TURN, SNAP_ZOOM, snap_window

    rng = np.random.default_rng(3)
    centre = 0.5 * (288 - 1)
    same = 0
    for _ in range(200):
        landmarks = rng.uniform(100, 1800, 2) + rng.uniform(30, 400) * (
            template_points(512) / 512.0 - 0.5) @ _rotation(rng.uniform(-0.6, 0.6)).T
        m = similarity_to_template(landmarks, 288)
        snapped = snap_window(m, centre)
        zoom, snapped_zoom = np.hypot(*m[:, 0]), np.hypot(*snapped[:, 0])
        assert abs(np.log(snapped_zoom / zoom)) <= 0.5 * np.log(SNAP_ZOOM) + 1e-9
        turn = np.arctan2(m[1, 0], m[0, 0]) - np.arctan2(snapped[1, 0], snapped[0, 0])
        assert abs(turn) <= 0.5 * SNAP_TURN + 1e-9
        # the frame point under the window's centre moved by at most half a step per axis
        moved = apply_affine(invert_affine(snapped), [[centre, centre]]) - apply_affine(
            invert_affine(m), [[centre, centre]])
        assert np.abs(moved).max() * snapped_zoom <= 0.5 * SNAP_SHIFT + 1e-6
        nudged = snap_window(similarity_to_template(landmarks + 1e-4, 288), centre)
        same += bool(np.array_equal(nudged, snapped))
    assert same >= 190  # only predictions within 1e-4 px of a lattice boundary differ
    mirror = similarity_to_template(landmarks, 288) * np.array([[1, 1, 1], [-1, -1, -1]])
    assert np.array_equal(snap_window(mirror, centre), mirror)


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_a_chunk_of_the_bench_scene_rejoins_the_whole_run(testdata, one_thread):
    """The bench's 768x432:1 scene (a face of ~100 px between the eyes, moving): a chunk that
    starts at frame 28 reports, after the product's lead, the alignment of a run from frame 0 —
    within 0.05 px of a 256 crop at once, and to 1e-4 px by the end. Without the first window's
    lattice (:func:`snap_window`) the window feedback kept the two runs a detector's noise apart
    (up to 0.76 px, 2026-11-28: the git history of benchmarks/RESULTS.md)."""
    from gpen_video.bench.synth import _background, default_face_image, load_face, parse_scene, \
        render_frame
    from gpen_video.farm.warmup import chunk_margins
    from gpen_video.options import RunOptions

    scene = parse_scene("768x432:1")
    photo = load_face(default_face_image())
    bg = _background(scene.width, scene.height, np.random.default_rng(0))
    options, fps, start = _options(testdata), 25.0, 28
    lead = chunk_margins(RunOptions(input=Path("-"), output=Path("-"), detect=options), fps).lead
    frames = [render_frame(photo, bg, scene, i, fps) for i in range(start + lead + 40)]
    whole = _analyse(frames, options, fps)
    chunk = _analyse(frames[start:], options, fps, number=start)
    shifts = []
    for f in range(start + lead, len(frames)):
        a, b = whole[f].faces, chunk[f - start].faces
        assert len(a) == len(b) == 1, f
        shifts.append(float(np.abs(a[0].matrix - b[0].matrix)[:, 2].max()))
    assert max(shifts) < 0.05, max(shifts)
    assert max(shifts[-10:]) < 1e-4, shifts[-10:]


def _host_windows_match_the_reference(windows, frames, jobs) -> list:
    """Run a round with the CPU's OpenCV windows, then with ``grid_sample`` (what a GPU runs);
    every face found by both, landmarks within 0.01 px. Returns the CPU round's windows."""
    assert windows.host_windows
    host = windows.run(frames, jobs, []).windows
    windows.host_windows = False
    reference = windows.run(frames, jobs, []).windows
    windows.host_windows = True
    for a, b in zip(host, reference):
        assert a is not None and b is not None
        assert float(np.abs(a.landmarks - b.landmarks).max()) < 0.01
    return host


@pytest.mark.parametrize("kind", ["16-bit", "grey"])
def test_host_windows_of_deep_and_grey_frames_match_the_reference(testdata, one_thread, kind):
    """The CPU's windows (OpenCV) of 16-bit frames and of grey frames (one channel read three
    times) find the face where the ``grid_sample`` path does: landmarks within 0.01 px."""
    from tests.pipeline_helpers import face_scene

    photo = _photo(testdata)
    rng = np.random.default_rng(11)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (0, 0), 3)
    frames = [face_scene(photo, 180, 6.0 * k, (360, 640), (300 + 20 * k, 180), background=bg)
              for k in (-1, 1)]
    detector = FaceDetector(_options(testdata))
    found = [detector.detect([f])[0][0].landmarks for f in frames]
    if kind == "16-bit":
        frames = [f.astype(np.uint16) * 257 for f in frames]
    else:
        frames = [np.ascontiguousarray(f[:, :, 1]) for f in frames]
    windows = WindowDetector(detector, 288, (224, 192, 192), first_gate=2.0)
    jobs = [WindowJob(i, lm + 1.5) for i, lm in enumerate(found)]
    host = _host_windows_match_the_reference(windows, frames, jobs)
    for a, lm in zip(host, found):
        assert float(np.abs(a.landmarks - lm).max()) < 6.0  # the face (full detection's landmarks)


def _halved(image: np.ndarray) -> np.ndarray:
    """Each 2×2 block's mean rounded half up (the reference for a window patch's levels)."""
    a = image.astype(np.int64)
    total = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
    return ((total + 2) // 4).astype(image.dtype)


def test_a_faces_windows_blend_the_two_levels_around_their_scale(testdata):
    """Level ``⌊λ⌋`` and weight ``λ − ⌊λ⌋`` of level ``⌊λ⌋ + 1``, ``λ = log2(frame px per window
    px)``; a face no larger than its windows reads the frame itself."""
    windows = WindowDetector(FaceDetector(_options(testdata)), 288, (224, 192, 192))
    template = template_points(288)
    for zoom, lam in ((1.3, 0.0), (1.0, 0.0), (0.8, 0.32193), (0.5, 1.0), (0.3, 1.73697),
                      (0.25, 2.0), (0.12, 3.05889)):
        level, weight = windows._levels(similarity_to_template(template / zoom + 7.3, 288))
        assert level == int(lam + 1e-9) or weight == pytest.approx(1.0)  # at a power of two
        assert 0.0 <= weight < 1.0 and level + weight == pytest.approx(lam, abs=1e-4), zoom


@pytest.mark.parametrize("kind", ["8-bit", "16-bit", "grey"])
def test_a_big_faces_region_is_halved_level_by_level(testdata, kind):
    """The region grows to whole blocks of the coarser level on a grid from the frame's origin
    (blocks the frame cuts are dropped; a corner too small for one block takes a smaller
    factor); its patches are the region halved level by level, each pixel the mean of a 2×2
    block rounded half up (16-bit frames scaled to 0–255 afterwards, grey frames read three
    times)."""
    import torch

    windows = WindowDetector(FaceDetector(_options(testdata)), 288, (224, 192, 192))
    template = template_points(288)
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (1078, 1918, 3), dtype=np.uint8)
    if kind == "16-bit":
        frame = frame.astype(np.uint16) * 257 + rng.integers(0, 257, frame.shape).astype(np.uint16)
    elif kind == "grey":
        frame = np.ascontiguousarray(frame[:, :, 1])
    for centre in ((900.0, 500.0), (1700.0, 950.0)):  # inside, and cut by the right/bottom edge
        matrix = similarity_to_template(template / 0.3 + np.array(centre) - 144 / 0.3, 288)
        assert windows._levels(matrix)[0] == 1
        plain, one = windows._window_region(frame.shape, matrix)
        (x0, y0, x1, y1), f = windows._window_region(frame.shape, matrix, 4)
        assert one == 1 and f == 4
        assert all(v % 4 == 0 for v in (x0, y0, x1 - x0, y1 - y0))
        assert x0 <= plain[0] < x0 + 4 and y0 <= plain[1] < y0 + 4
        assert x1 <= frame.shape[1] and y1 <= frame.shape[0]
        assert x1 > plain[2] - 4 and y1 > plain[3] - 4  # only blocks the frame cuts are dropped
        region = frame[y0:y1, x0:x1]
        if region.ndim == 2:
            region = region[:, :, None]
        windows._scratch.reset()
        fine, coarse = windows._patches(frame, (x0, y0, x1, y1), 1, True)
        for patch, expected in ((fine, _halved(region)), (coarse, _halved(_halved(region)))):
            expected = torch.from_numpy(expected.astype(np.float32)).expand(-1, -1, 3)
            if kind == "16-bit":
                expected = expected * np.float32(255.0 / 65535.0)
            assert torch.equal(patch[0].permute(1, 2, 0), expected)
    corner = similarity_to_template(template / 0.3 + 2300.0, 288)  # the last pixel's corner
    assert windows._window_region(frame.shape, corner, 4) == ((1916, 1076, 1918, 1078), 2)


def test_a_window_changes_smoothly_as_the_face_crosses_a_level(testdata, one_thread):
    """A face whose size crosses a power of two of its windows' scale by a hair: with the
    levels blended the window images on either side hardly differ (mean 0.05 levels at most);
    with a single level per face, switching at the crossing, they do (more than 0.5)."""
    import torch

    from gpen_video.faces.window_detect import _invert_batch

    windows = WindowDetector(FaceDetector(_options(testdata)), 288, (224, 192, 192))
    photo = cv2.resize(_photo(testdata), (1024, 1024))
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[28:1052, 448:1472] = photo
    template = template_points(288)

    def first_window(zoom):
        matrix = similarity_to_template(template / zoom + np.array([960.0, 540.0]) - 144 / zoom,
                                        288)
        jobs = [WindowJob(0, np.zeros((5, 2)))]
        windows._scratch.reset()
        with torch.inference_mode():
            inputs = windows._inputs([frame], jobs, [matrix])
            return windows._windows(inputs, _invert_batch(inputs.matrices * 224 / 288), 224)

    step = 2 ** 1e-5  # a size change far too small to show in the windows by itself
    blended = float((first_window(0.5 / step) - first_window(0.5 * step)).abs().mean())
    blended_levels = WindowDetector._levels
    windows._levels = lambda matrix: (blended_levels(windows, matrix)[0], 0.0)  # one level each
    single = float((first_window(0.5 / step) - first_window(0.5 * step)).abs().mean())
    assert blended < 0.05 and single > 0.5, (blended, single)  # measured: 0.007 and 1.26


def test_a_big_faces_windows_find_it_where_full_detection_does(testdata, one_thread):
    """A face of ~390 px between the eyes in a 4K frame (windows from levels 2 and 3) and one of
    ~190 px in a 1080p frame (levels 1 and 2): a window round finds each where full-frame
    detection does, with OpenCV's windows and with ``grid_sample``'s (the GPU's) alike,
    landmarks within 0.01 px. (Windows and full-frame detection see a face at other scales
    and differ by ~5 % of the IOD on these faces, with the frame's pixels or with levels;
    B1, ``benchmarks/face_stability.py``, measures which is steadier.)"""
    from tests.pipeline_helpers import face_scene

    photo = _photo(testdata)
    detector = FaceDetector(_options(testdata))
    windows = WindowDetector(detector, 288, (224, 192, 192), first_gate=2.0)
    for (h, w), face_px, level in (((2160, 3840), 1600, 2), ((1080, 1920), 900, 1)):
        frame = face_scene(photo, face_px, 5.0, (h, w), (0.52 * w, 0.5 * h))
        full = detector.detect([frame])[0]
        assert len(full) == 1
        found = full[0].landmarks
        levels = windows._levels(similarity_to_template(found, 288))
        assert levels[0] == level and levels[1] > 0.0
        host = _host_windows_match_the_reference(windows, [frame], [WindowJob(0, found + 4.0)])
        error = float(np.abs(host[0].landmarks - found).max())
        assert error < 0.08 * full[0].inter_ocular, (error, full[0].inter_ocular)


def test_scan_parts_of_8bit_frames_are_resized_before_they_become_float(testdata):
    """The CPU's fast path for scan parts (uint8 resize, then float) gives the float path's
    image to within one level; 16-bit frames and unscaled parts take the float path itself;
    a grey frame and a read-only frame work."""
    import torch
    import torch.nn.functional as F

    detector = FaceDetector(_options(testdata))
    windows = WindowDetector(detector, 288, (224, 160, 160))
    rng = np.random.default_rng(4)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), (0, 0), 1.5)
    region, size = (100, 40, 1380, 760), (640, 360)

    def float_path(image):
        windows._scratch.reset()
        return F.interpolate(windows._to_device(image, region), size=size[::-1],
                             mode="bilinear", antialias=True, align_corners=False).clone()

    def scan_image(image, size=size):
        windows._scratch.reset()
        return windows._scan_image(image, region, size).clone()

    expected = float_path(frame)
    got = scan_image(frame)
    assert got.shape == expected.shape == (1, 3, 360, 640)
    assert float((got - expected).abs().max()) <= 1.0
    assert float((got - expected).abs().mean()) < 0.5
    locked = frame.copy()
    locked.flags.writeable = False
    assert torch.equal(scan_image(locked), got)
    grey = np.ascontiguousarray(frame[:, :, 1])
    g = scan_image(grey)
    assert torch.equal(g[0, 0], g[0, 2]) and float((g[0, 0] - got[0, 1]).abs().max()) == 0.0
    deep = frame.astype(np.uint16) * 257
    assert torch.equal(scan_image(deep), float_path(deep))
    whole = scan_image(frame, (1280, 720))  # no resize: the region as float
    assert torch.equal(whole[0].permute(1, 2, 0), torch.from_numpy(frame[40:760, 100:1380]).float())


def _window_inputs(windows, frames, jobs):
    """What a round hands its first pass, without the lattice: regions, patches, blend
    weights and the frame → template matrices (:meth:`WindowDetector._inputs`)."""
    matrices = [similarity_to_template(job.landmarks, windows.scale) for job in jobs]
    windows._scratch.reset()
    return windows._inputs(frames, jobs, matrices)


def test_host_window_sampling_matches_the_grid_sample_reference(testdata, one_thread):
    """On the CPU the windows are warped by OpenCV (:meth:`WindowDetector._sample_host`);
    ``grid_sample`` (:meth:`_sample_grid`, what a GPU runs) is the reference: the same window
    images to within 0.05 levels (measured: 0.01; a window reaching past the frame's edge
    included, and windows blended from two levels), the same landmarks to 0.01 px."""
    import torch

    from gpen_video.faces.window_detect import _invert_batch
    from tests.pipeline_helpers import face_scene

    photo = _photo(testdata)
    rng = np.random.default_rng(7)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (540, 960, 3), dtype=np.uint8), (0, 0), 3)
    frames = [face_scene(photo, 260, 8.0 * k, (540, 960), (480 + 30 * k, 280 - 40 * k),
                         background=bg) for k in (-1, 0, 1)]
    frames.append(face_scene(photo, 200, 0.0, (540, 960), (120, 110), background=bg))  # at the edge
    detector = FaceDetector(_options(testdata))
    windows = WindowDetector(detector, 288, (224, 192, 192), first_gate=2.0)
    found = [detector.detect([f])[0][0].landmarks for f in frames]
    jobs = [WindowJob(i, lm + rng.normal(0.0, 2.0, lm.shape)) for i, lm in enumerate(found)]
    with torch.inference_mode():
        inputs = _window_inputs(windows, frames, jobs)
        inverse = _invert_batch(inputs.matrices * 224 / 288)
        host = windows._windows(inputs, inverse, 224)
        windows.host_windows = False
        grid = windows._windows(inputs, inverse, 224)
        windows.host_windows = True
    assert any(inputs.blends)  # these faces' windows blend in the coarser level a little
    diff = (host - grid).abs()
    assert host.shape == grid.shape == (4, 3, 224, 224)
    assert float(diff.mean()) < 1e-3 and float(diff.max()) < 0.05  # of 0-255 levels
    _host_windows_match_the_reference(windows, frames, jobs)


def test_a_window_pass_picks_what_gating_every_prior_picks(testdata, one_thread):
    """A pass looks at its windows' ``WINDOW_TOP_K`` best-scoring priors only; in a crowd (a
    face with four smaller ones around it) it picks the face that gating all priors, decoded by
    facexlib (the reference), picks — also where other faces score above the threshold and the
    gate turns them away (a refinement pass: 192 px, ½ IOD)."""
    import torch

    from gpen_video.faces.align import TEMPLATE_IOD_512
    from gpen_video.faces.window_detect import REFINE_GATE, _invert_batch
    from tests.geometry import facexlib_decode
    from tests.pipeline_helpers import face_scene

    photo = _photo(testdata)
    image = face_scene(photo, 240, 0.0, (480, 640), (320, 240))
    for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        image = face_scene(photo, 90, 0.0, (480, 640), (320 + 80 * dx, 240 + 80 * dy),
                           background=image)
    detector = FaceDetector(_options(testdata, max_side=0, refine=0))
    faces = detector.detect_one(image)
    assert len(faces) == 5
    windows = WindowDetector(detector, 288, (224, 192, 192), first_gate=2.0)
    rng = np.random.default_rng(5)
    jobs = [WindowJob(0, f.landmarks + rng.normal(0.0, 0.1 * f.inter_ocular, (5, 2)))
            for f in faces]
    size, gate = 192, REFINE_GATE * TEMPLATE_IOD_512 * 288 / 512.0
    template = windows._template + 0.5 * (size - 288)
    with torch.inference_mode():
        inputs = _window_inputs(windows, [image], jobs)
        window = inputs.matrices.clone()
        window[:, :, 2] += 0.5 * (size - 288)
        batch = windows._windows(inputs, _invert_batch(window), size)
        loc, scores, landm, priors = windows._forward(batch)
        found, box, score, points = windows._pick(loc, scores, landm, priors, template, gate)

        all_boxes, all_points = facexlib_decode(detector.model.cfg, size, size, loc, landm)
        dist = (all_points - template).norm(dim=-1).mean(dim=-1)
        ok = (scores > detector.options.score_threshold) & (dist <= gate)
        other = (scores > detector.options.score_threshold) & (dist > gate)  # others' faces
        best = torch.where(ok, scores, torch.tensor(-np.inf)).argmax(dim=1)
        rows = torch.arange(len(jobs))
    assert bool(other.any())  # a window where the gate turned another face away
    assert found.tolist() == ok[rows, best].tolist() and bool(found.all())
    assert torch.equal(score, scores[rows, best])
    assert float((points - all_points[rows, best]).abs().max()) < 1e-3
    assert float((box - all_boxes[rows, best]).abs().max()) < 1e-3
