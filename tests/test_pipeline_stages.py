"""Each pipeline stage on its own, without threads, on a few frames; and the two wirings.

The stages are driven by hand (``process``/``finish``) on plain lists. The detector is the real
MobileNet RetinaFace, the restorer the identity restorer (which changes nothing: geometry and
plumbing only), the sink a real lossless file.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from gpen_video.backends.identity import IdentityRestorer
from gpen_video.compose.reference import CpuFaces
from gpen_video.compose.temporal import TemporalSmoother
from gpen_video.faces import FaceDetector, FaceStream
from gpen_video.media import VideoSink, VideoSource
from gpen_video.options import DetectOptions, EncodeOptions, SmoothOptions, TrackOptions
from gpen_video.pipeline.clock import StageClock
from gpen_video.pipeline.jobs import FrameJob
from gpen_video.pipeline.stages import AnalyseFaces, ComposeFaces, Decode, Encode, RestoreFaces
from gpen_video.pipeline.wiring import SerialRun, ThreadedRun
from gpen_video.shutdown import SignalGuard, Terminated
from tests.geometry import face_photo, psnr
from tests.pipeline_helpers import face_scene, read_frames, write_clip

SIZE = 128  # crop side of the identity restorer
FRAMES = 6


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory):
    """Six lossless 320×240 frames of one face drifting right."""
    photo = face_photo(testdata)
    frames = [face_scene(photo, 110, 3.0, (240, 320), (140.0 + 3 * i, 120.0))
              for i in range(FRAMES)]
    return write_clip(tmp_path_factory.mktemp("stages") / "clip.mov", frames)


@pytest.fixture(scope="module")
def detector(testdata):
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    return FaceDetector(DetectOptions(network="mobile0.25", weights=weights, device="cpu"))


def _decoded(clip) -> list:
    with VideoSource(clip) as source:
        return list(Decode(source, StageClock()))


def _stream() -> FaceStream:
    # the look-ahead reaches past these 6 frames: faces come out at finish()
    return FaceStream(TrackOptions(), SmoothOptions(), fps=25.0, crop_size=SIZE)


class CountingDetector:
    """The real detector, counting which frames it was asked about and in what batches."""

    def __init__(self, detector):
        self.detector = detector
        self.batches: list[int] = []

    def detect(self, images):
        self.batches.append(len(images))
        return self.detector.detect(images)


def _analysed(clip, detector) -> list[FrameJob]:
    stage = AnalyseFaces(detector, _stream(), StageClock(), batch=2)
    jobs = [j for frame in _decoded(clip) for j in stage.process(frame)]
    return jobs + stage.finish()


def test_decode_yields_every_frame_in_order_and_times_it(clip):
    clock = StageClock()
    with VideoSource(clip) as source:
        frames = list(Decode(source, clock))
    assert [f.index for f in frames] == list(range(FRAMES))
    assert clock.seconds["decode"] > 0 and clock.seconds["detect"] == 0


def test_analyse_detects_in_batches_and_releases_every_frame_once(clip, detector):
    spy = CountingDetector(detector)
    stage = AnalyseFaces(spy, _stream(), StageClock(), batch=4, every=2)
    out = []
    for frame in _decoded(clip):
        out += stage.process(frame)
    assert spy.batches == [2]  # frames 0-3 in one forward: 0 and 2 are detection frames
    out += stage.finish()
    assert spy.batches == [2, 1]  # the last two frames at the end: only frame 4 is detected
    assert [j.frame.index for j in out] == list(range(FRAMES))
    assert all(len(j.faces) == 1 for j in out)
    assert len({j.faces[0].face.track_id for j in out}) == 1
    assert not any(j.cut for j in out)


def test_restore_runs_full_batches_across_frames_and_keeps_frame_order(clip, detector):
    jobs = _analysed(clip, detector)
    stage = RestoreFaces(IdentityRestorer(size=SIZE), CpuFaces(SIZE), StageClock(), batch=4)
    handed_on = [len(stage.process(j)) for j in jobs]
    assert handed_on == [0, 0, 0, 4, 0, 0]  # frames wait until their faces' batch has run
    assert stage.batches == 1
    rest = stage.finish()
    assert [j.frame.index for j in rest] == [4, 5] and stage.batches == 2  # the partial batch
    for job in jobs:
        face = job.faces[0]
        assert face.restored.shape == (SIZE, SIZE, 3)
        assert np.array_equal(face.restored, face.crop)  # identity: restored is the crop
        assert face.source is None  # the frame handle is released once cropped


def test_restore_passes_warm_up_frames_through_unrestored(clip, detector):
    jobs = _analysed(clip, detector)
    for job in jobs[:2]:
        job.frame = type(job.frame)(**{**job.frame.__dict__, "in_range": False})
    stage = RestoreFaces(IdentityRestorer(size=SIZE), CpuFaces(SIZE), StageClock(), batch=5)
    out = [j for job in jobs for j in stage.process(job)]
    assert [j.frame.index for j in out] == [0, 1]  # no batch needed for them
    assert all(j.faces[0].crop is None for j in out)
    out += stage.finish()
    assert stage.batches == 1 and [j.frame.index for j in out] == list(range(FRAMES))


def test_compose_pastes_identity_faces_back_and_reports_them(clip, detector):
    jobs = _analysed(clip, detector)
    restore = RestoreFaces(IdentityRestorer(size=SIZE), CpuFaces(SIZE), StageClock(), batch=3)
    restored = [j for job in jobs for j in restore.process(job)] + restore.finish()
    originals = {j.frame.index: j.frame.image.copy() for j in restored}
    seen: dict[int, list] = {}
    stage = ComposeFaces(CpuFaces(SIZE), TemporalSmoother(SIZE, "off"), StageClock(),
                         observer=lambda i, faces: seen.__setitem__(i, faces))
    out = [pair for job in restored for pair in stage.process(job)] + stage.finish()
    assert [frame.index for frame, _ in out] == list(range(FRAMES))
    assert sorted(seen) == list(range(FRAMES)) and stage.faces == FRAMES
    assert len(stage.tracks) == 1
    for frame, image in out:
        original = originals[frame.index]
        changed = np.any(image != original, axis=2)
        assert changed.any() and changed.mean() < 0.5  # only the face's region is written
        assert psnr(image, original) > 40.0  # warp → identity → inverse warp


def test_encode_writes_frames_and_closes_the_file(clip, tmp_path):
    frames = _decoded(clip)
    with VideoSource(clip) as source:
        sink = VideoSink(tmp_path / "out.mov", source, EncodeOptions(codec="png"))
        stage = Encode(sink, StageClock())
        for frame in frames:
            assert stage.process((frame, frame.image)) == []
        stage.finish()
    assert stage.written == FRAMES
    back = read_frames(tmp_path / "out.mov")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, back))


class Doubler:
    """A toy stage: every item twice; holds the last item back until the end."""

    name = "doubler"

    def __init__(self):
        self.held = None
        self.aborted = threading.Event()

    def process(self, item):
        out = [] if self.held is None else [self.held, self.held]
        self.held = item
        return out

    def finish(self):
        return [] if self.held is None else [self.held, self.held]

    def abort(self):
        self.aborted.set()


class Collect:
    name = "collect"

    def __init__(self, fail_at=None):
        self.items = []
        self.fail_at = fail_at

    def process(self, item):
        if item == self.fail_at:
            raise RuntimeError(f"stage failed at {item}")
        self.items.append(item)
        return []

    def finish(self):
        return []


@pytest.mark.parametrize("wiring", ["serial", "threaded"])
def test_both_wirings_hand_items_on_in_order_and_flush_at_the_end(wiring):
    stages = [Doubler(), Doubler(), Collect()]
    if wiring == "serial":
        SerialRun(range(5), stages).run()
    else:
        ThreadedRun(range(5), stages, (2, 2, 2)).run()
    assert stages[-1].items == [i for i in range(5) for _ in range(4)]


@pytest.mark.parametrize("wiring", ["serial", "threaded"])
def test_a_failing_stage_stops_the_run_and_aborts_the_others(wiring):
    stages = [Doubler(), Collect(fail_at=3)]
    run = SerialRun(range(100), stages) if wiring == "serial" else ThreadedRun(
        range(100), stages, (2, 2))
    with pytest.raises(RuntimeError, match="stage failed at 3"):
        run.run()
    assert stages[0].aborted.is_set()
    assert run.stragglers == []


def _slow_source(n: int, seconds: float):
    for i in range(n):
        time.sleep(seconds)  # a decoder inside a long call
        yield i


def test_a_signal_while_the_threads_start_leaves_no_thread_unaccounted(monkeypatch):
    """SIGTERM right after the first stage thread (the decoder) has started, before the run has
    recorded it: every thread the run started must be joined or named a straggler when the stop
    reaches the caller, who otherwise closes the source and sink under a running thread (the
    decoder freeing frames of a closed container: a corrupted heap)."""
    real_start, started = threading.Thread.start, []

    def start_then_signal(thread):
        real_start(thread)
        started.append(thread)
        if len(started) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here, in the main thread

    run = ThreadedRun(_slow_source(50, 0.2), [Doubler(), Collect()], (2, 2), join_timeout=5.0)
    with SignalGuard(grace=60.0):
        monkeypatch.setattr(threading.Thread, "start", start_then_signal)
        with pytest.raises(Terminated):
            run.run()
        monkeypatch.undo()
    stage_threads = [t for t in started if t.name.startswith("gpen-")]  # not the watchdog
    assert [t.name for t in stage_threads] == ["gpen-decode", "gpen-doubler", "gpen-collect"]
    unaccounted = [t.name for t in stage_threads if t.is_alive() and t.name not in run.stragglers]
    assert unaccounted == []
    assert run.stragglers == []  # each left at its next poll, within the join timeout
