"""The end-to-end restorer: the only module that knows the order of the stages.

::

    decode ─q─▶ detect + track/smooth ─q─▶ align + restore ─q─▶ temporal + paste ─q─▶ encode
    (VideoSource)  (FaceDetector, FaceStream)  (Restorer, batches)  (TemporalSmoother,   (VideoSink)
                                                                     Blender)

Each arrow is a bounded queue and each box a thread, so decoding, detection, the network, pasting
and encoding overlap (PyAV, OpenCV and torch release the GIL while they work). Crops and paste run
on the host with OpenCV, or on the restorer's torch device (``BlendOptions.geometry``,
:mod:`gpen_video.face_geometry`: frames uploaded once, one sampling call per batch, only finished
frames back). Memory is bounded
by the queues plus the faces stage's look-ahead window (``FaceStream.delay`` frames) plus at most
``max(16, 2·batch)`` frames waiting for their faces' batch — never by the clip's length.

Order and determinism: every stage handles frames in presentation order; faces are gathered
across frames into batches of exactly ``RestoreOptions.batch`` (a partial batch only when too many
frames are waiting, or at the end), decided by counts, never by timing — the same input gives the
same batches and so bit-identical output.

Before the output file is opened, everything that can fail cheaply is checked: the input, the
weights (loaded, downloaded if allowed), the backend and device, the detector. Ctrl-C (or any
error) stops every thread, deletes the sink's temporary file and re-raises: nothing is left at the
output path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gpen_video.errors import UsageError
from gpen_video.options import RunOptions

log = logging.getLogger("gpen_video.pipeline")

STAGES = ("decode", "detect", "track", "align", "restore", "temporal", "paste", "encode")
_POLL = 0.05  # seconds between checks of the stop flag while a queue is full/empty
_END = object()  # end-of-stream marker on the queues


class _Stopped(Exception):
    """Raised inside a stage thread when the run is being stopped."""


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 face``, ``0 faces``, ``3 faces``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True)
class Summary:
    """What a run did. ``stage_seconds``: busy time per stage (stages overlap, so they add up to
    more than ``seconds``)."""

    output: Path
    frames: int  # frames written
    faces: int  # face instances restored (over all written frames)
    tracks: int  # distinct face tracks among them
    seconds: float  # wall clock, from the first decoded frame to the closed output
    setup_seconds: float  # opening the input, loading weights and detector
    stage_seconds: dict[str, float] = field(default_factory=dict)
    restorer: str = ""
    batches: int = 0  # forward passes of the restorer

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        """Human-readable closing summary (a few lines)."""
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.stage_seconds.items())
        return (
            f"gpen-video: wrote {self.output}: {_count(self.frames, 'frame')}, "
            f"{_count(self.faces, 'face')} in {_count(self.tracks, 'track')}, "
            f"{self.fps:.2f} fps ({self.seconds:.1f}s + "
            f"{self.setup_seconds:.1f}s setup)\n"
            f"  restorer: {self.restorer}, {_count(self.batches, 'batch', 'batches')}\n"
            f"  time per stage: {stages}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "frames": self.frames, "faces": self.faces,
                "tracks": self.tracks, "seconds": round(self.seconds, 3),
                "setup_seconds": round(self.setup_seconds, 3), "fps": round(self.fps, 3),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "restorer": self.restorer, "batches": self.batches}


@dataclass
class PastedFace:
    """What :func:`run`'s ``observer`` hears about each face it pasted."""

    track_id: int
    matrix: np.ndarray  # 2×3 frame → crop, for ``crop_size``
    crop_size: int
    alpha: float  # ramp × strength actually used


# ------------------------------------------------------------------------------ internal records


@dataclass
class _FaceJob:
    face: Any  # gpen_video.faces.TrackedFace
    source: Any = None  # its frame as the geometry holds it (face_geometry: image or tensor)
    crop: Any = None  # aligned input: S×S×3 float32 [0, 1] (cpu) or 3×S×S tensor (torch)
    restored: Any = None  # the restorer's output, same kind


@dataclass
class _FrameJob:
    frame: Any  # gpen_video.media.Frame
    faces: list[_FaceJob]
    cut: bool
    source: Any = None  # the frame as the geometry holds it, when it has faces to restore

    @property
    def ready(self) -> bool:
        return all(f.restored is not None for f in self.faces)


class StageClock:
    """Busy seconds per stage; each stage is written by one thread only.

    ``serial=True`` makes :func:`run` execute one stage at a time (a baton handed over at the
    queues), so that the stages' times add up to the wall time; ``gpen-video bench`` uses it for
    its per-stage breakdown and overrides :meth:`add` to see every interval."""

    def __init__(self, serial: bool = False) -> None:
        self.seconds = {name: 0.0 for name in STAGES}
        self.serial = serial

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


class _Run:
    """The threads of one run and what they share."""

    def __init__(self, clock: StageClock | None = None) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.clock = clock if clock is not None else StageClock()
        # serial clock: a thread runs only while it holds the baton; it lets go in put/get
        self.baton = threading.Lock() if self.clock.serial else None
        self.written = 0
        self.faces = 0
        self.tracks: set[int] = set()
        self.batches = 0
        self.alive = False  # some thread still running after a stop (see run())

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        """Hand the serial clock's baton over while this thread waits at a queue."""
        if self.baton is not None:
            self.baton.release()
        try:
            yield
        finally:
            if self.baton is not None:
                self.baton.acquire()

    def put(self, q: queue.Queue, item: Any) -> None:
        with self._waiting():
            while not self.stop.is_set():
                try:
                    q.put(item, timeout=_POLL)
                    return
                except queue.Full:
                    continue
            raise _Stopped

    def get(self, q: queue.Queue) -> Any:
        with self._waiting():
            while not self.stop.is_set():
                try:
                    return q.get(timeout=_POLL)
                except queue.Empty:
                    continue
            raise _Stopped

    def thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            if self.baton is not None:
                self.baton.acquire()
            try:
                target()
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.errors.append(exc)
                self.stop.set()
            finally:
                if self.baton is not None:
                    self.baton.release()

        t = threading.Thread(target=body, name=f"gpen-{name}", daemon=True)
        t.start()
        return t


# ------------------------------------------------------------------------------ progress


class _Progress:
    """``bar``: tqdm on stderr (fps, ETA); ``plain``: ``Progress: 42%`` lines on stdout (Deadline);
    ``json``: one JSON object per line on stdout; ``none``: silent."""

    def __init__(self, mode: str, total: int, stream: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.mode = mode
        self.total = max(0, int(total))
        self.out = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._bar = None
        self._last_percent = -1
        self._last_json = 0.0
        self._start = time.perf_counter()
        self._redirect = None
        if mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = tqdm(total=self.total or None, unit="frame", file=self.err,
                             dynamic_ncols=True, desc="gpen-video", leave=True)
            # log lines go through tqdm.write while the bar is drawn: on their own line, with
            # the bar redrawn under them
            self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger("gpen_video")])
            self._redirect.__enter__()

    def update(self, done: int) -> None:
        if self.mode == "bar" and self._bar is not None:
            if done > self._bar.n:
                self._bar.update(done - self._bar.n)
        elif self.mode == "plain":
            percent = min(100, int(100 * done / self.total)) if self.total else 0
            if percent > self._last_percent:
                self._last_percent = percent
                print(f"Progress: {percent}%", file=self.out, flush=True)
        elif self.mode == "json":
            now = time.perf_counter()
            if now - self._last_json >= 0.5 or (self.total and done >= self.total):
                self._last_json = now
                elapsed = now - self._start
                fps = done / elapsed if elapsed > 0 else 0.0
                eta = (self.total - done) / fps if fps > 0 and self.total else None
                print(json.dumps({"event": "progress", "frame": done, "total": self.total,
                                  "percent": round(100 * done / self.total, 1) if self.total
                                  else None, "fps": round(fps, 3),
                                  "eta_seconds": None if eta is None else round(eta, 1)}),
                      file=self.out, flush=True)

    def close(self, summary: Summary | None) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        if self._bar is not None:
            self._bar.close()
        if summary is None or self.mode == "none":
            return
        if self.mode == "json":
            print(json.dumps({"event": "summary", **summary.as_dict()}), file=self.out,
                  flush=True)
        else:
            if self.mode == "plain":
                self.update(summary.frames if not self.total else self.total)
            print(summary.text(), file=self.out if self.mode == "plain" else self.err,
                  flush=True)


# ------------------------------------------------------------------------------ the run


def _check_options(options: RunOptions) -> None:
    from gpen_video.temporal import MODES

    if options.faces not in ("all", "largest"):
        raise UsageError(f"--faces {options.faces!r}: choose all or largest")
    if options.on_damage not in ("conceal", "fail"):
        raise UsageError(f"--on-damage {options.on_damage!r}: choose conceal or fail")
    if options.progress not in ("bar", "plain", "json", "none"):
        raise UsageError(f"--progress {options.progress!r}: choose bar, plain, json or none")
    if options.temporal.mode not in MODES:
        raise UsageError(f"--temporal {options.temporal.mode!r}: choose {' or '.join(MODES)}")
    if not 0.0 <= options.blend.strength <= 1.0:
        raise UsageError(f"--strength {options.blend.strength}: must be between 0 and 1")
    if options.restore.batch < 1:
        raise UsageError(f"--batch {options.restore.batch}: must be at least 1")
    from gpen_video.face_geometry import GEOMETRIES

    if options.blend.geometry not in GEOMETRIES:
        raise UsageError(f"--geometry {options.blend.geometry!r}: choose "
                         f"{', '.join(GEOMETRIES)}")


def run(
    options: RunOptions,
    *,
    restorer: Any = None,
    detector: Any = None,
    observer: Callable[[int, list[PastedFace]], None] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: StageClock | None = None,
) -> Summary:
    """Restore the faces of ``options.input`` into ``options.output``.

    Args:
        options: the whole job.
        restorer: an already loaded :class:`~gpen_video.backends.Restorer` to use instead of
            building one from ``options.model``/``options.restore`` (farm workers keep one);
            it is not closed at the end.
        detector: an already built :class:`~gpen_video.faces.FaceDetector` to use instead of
            building one from ``options.detect`` (same reason).
        observer: called from the paste thread, in frame order, with each written frame's index
            and the faces pasted into it (for tests and overlays; keep it fast).
        stdout, stderr: where progress and the summary go (default: the process's).
        clock: where the stages' busy time goes (``gpen_video.bench``); ``serial=True`` runs one
            stage at a time (same output, slower).

    Returns:
        The :class:`Summary` (also printed unless ``options.progress == "none"``).

    Raises:
        InputError, OutputError, UsageError, WeightsError, DownloadError, BackendUnavailable:
            bad input, output, options, weights or device (nothing is written).
        KeyboardInterrupt: interrupted; every thread is stopped and nothing is left at the
            output path.
    """
    from gpen_video.backends import create_restorer
    from gpen_video.face_geometry import create_geometry
    from gpen_video.faces import FaceDetector, FaceStream
    from gpen_video.media import VideoSink, VideoSource
    from gpen_video.temporal import TemporalSmoother

    _check_options(options)
    t_setup = time.perf_counter()
    source = VideoSource(options.input, options.range,
                         errors="strict" if options.on_damage == "fail" else "conceal")
    own_restorer = restorer is None
    sink = None
    try:
        if own_restorer:
            restorer = create_restorer(options.model, options.restore)
        restorer.load()
        size = restorer.spec.size
        if detector is None:
            detector = FaceDetector(options.detect)
        fps = float(source.fps) if source.fps else 25.0
        stream = FaceStream(options.track, options.smooth, fps=fps, crop_size=size,
                            ramp_frames=options.blend.ramp_frames,
                            detect_every=max(1, options.detect.every))
        geometry, why = create_geometry(options.blend.geometry, size, restorer.device,
                                        strength=options.blend.strength)
        log.info(why)
        temporal = TemporalSmoother(size, options.temporal.mode)
        sink = VideoSink(options.output, source, options.encode, overwrite=options.overwrite)
        setup_seconds = time.perf_counter() - t_setup
        state = _Run(clock)
        try:
            return _execute(state, options, source, sink, restorer, detector, stream, geometry,
                            temporal, observer, setup_seconds, stdout, stderr)
        finally:
            if state.alive:
                # a stage did not stop within the deadline (e.g. inside a long forward pass):
                # its objects are left to it; only the sink's temporary file is removed now
                _remove_sink_temp(sink)
                sink = source = None
                own_restorer = False
    finally:
        if sink is not None:
            sink.abort()  # no-op after a successful close
        if own_restorer and restorer is not None:
            restorer.close()
        if source is not None:
            source.close()


def _remove_sink_temp(sink: Any) -> None:
    temp = getattr(sink, "_temp", None)
    if temp is not None:
        Path(temp).unlink(missing_ok=True)


def _execute(state: "_Run", options: RunOptions, source: Any, sink: Any, restorer: Any,
             detector: Any, stream: Any, geometry: Any, temporal: Any, observer: Any,
             setup_seconds: float, stdout: TextIO | None, stderr: TextIO | None) -> Summary:
    from gpen_video.blend import ColorMatcher

    clock = state.clock
    size = restorer.spec.size
    batch_size = max(1, options.restore.batch)
    detect_batch = max(1, options.detect.batch)
    detect_every = max(1, options.detect.every)
    max_pending = max(16, 2 * batch_size)
    q_decoded: queue.Queue = queue.Queue(maxsize=2 * detect_batch)
    q_faces: queue.Queue = queue.Queue(maxsize=max(8, batch_size))
    q_restored: queue.Queue = queue.Queue(maxsize=8)
    q_encode: queue.Queue = queue.Queue(maxsize=8)

    def decode() -> None:
        it = iter(source)
        t = time.perf_counter()
        for frame in it:
            t = clock.add("decode", t)
            state.put(q_decoded, frame)
            t = time.perf_counter()
        state.put(q_decoded, _END)

    def analyse() -> None:
        held: deque = deque()  # frames pushed to the stream, waiting for their faces
        todo: list = []  # frames read, not yet detected
        pushed = 0

        def release(ready: list) -> None:
            for ff in ready:
                frame = held.popleft()
                faces = list(ff.faces)
                if options.faces == "largest" and len(faces) > 1:
                    faces = [max(faces, key=lambda f: f.params.width)]
                state.put(q_faces, _FrameJob(frame, [_FaceJob(f) for f in faces], ff.cut))

        def detect_and_push(frames: list) -> None:
            nonlocal pushed
            wanted = [i for i, _ in enumerate(frames) if (pushed + i) % detect_every == 0]
            t = time.perf_counter()
            found = detector.detect([frames[i].image for i in wanted]) if wanted else []
            t = clock.add("detect", t)
            per_frame: list = [None] * len(frames)
            for i, dets in zip(wanted, found):
                per_frame[i] = dets
            for frame, dets in zip(frames, per_frame):
                held.append(frame)
                ready = stream.push(dets, frame.image)
                pushed += 1
                t = clock.add("track", t)
                release(ready)
                t = time.perf_counter()

        while True:
            item = state.get(q_decoded)
            if item is _END:
                break
            todo.append(item)
            if len(todo) >= detect_batch:
                detect_and_push(todo)
                todo = []
        if todo:
            detect_and_push(todo)
        t = time.perf_counter()
        ready = stream.flush()
        clock.add("track", t)
        release(ready)
        state.put(q_faces, _END)

    def restore() -> None:
        pending: deque[_FrameJob] = deque()
        waiting: list[_FaceJob] = []

        def run_batch(jobs: list[_FaceJob]) -> None:
            t = time.perf_counter()
            crops = geometry.crop([j.source for j in jobs], [j.face.matrix for j in jobs])
            t = clock.add("align", t)
            out = geometry.restore(restorer, crops)
            clock.add("restore", t)
            state.batches += 1
            for j, crop, restored in zip(jobs, crops, out):
                j.crop, j.restored, j.source = crop, restored, None

        def emit_ready() -> None:
            while pending and pending[0].ready:
                state.put(q_restored, pending.popleft())

        while True:
            item = state.get(q_faces)
            if item is _END:
                break
            job: _FrameJob = item
            if not job.frame.in_range:
                # warm-up frame before the range: tracked, not restored, not written
                for f in job.faces:
                    f.restored = np.empty(0, np.float32)
            elif job.faces:
                t = time.perf_counter()
                job.source = geometry.frame(job.frame.image)  # torch: the one upload
                for f in job.faces:
                    f.source = job.source
                    waiting.append(f)
                clock.add("align", t)
            pending.append(job)
            while len(waiting) >= batch_size:
                run_batch(waiting[:batch_size])
                waiting = waiting[batch_size:]
            if waiting and len(pending) > max_pending:
                run_batch(waiting)
                waiting = []
            emit_ready()
        if waiting:
            run_batch(waiting)
        emit_ready()
        state.put(q_restored, _END)

    # temporal smoothing and colour matching are CPU code (face_geometry says what comes back)
    host_crops = options.blend.color_match or temporal.mode != "off"

    def paste() -> None:
        matchers: dict[int, ColorMatcher] = {}
        while True:
            item = state.get(q_restored)
            if item is _END:
                break
            job: _FrameJob = item
            if job.cut:
                temporal.reset()
                matchers.clear()
            if not job.frame.in_range:
                state.put(q_encode, (job.frame, job.frame.image))
                continue
            seen = []
            t = time.perf_counter()
            items = [f.restored for f in job.faces]
            if host_crops and job.faces:
                sources = geometry.to_host([f.crop for f in job.faces])
                items = geometry.to_host(items)
            for k, f in enumerate(job.faces):
                face = f.face
                if face.is_start:
                    temporal.reset(face.track_id)
                    matchers.pop(face.track_id, None)
                if host_crops:
                    if options.blend.color_match:
                        matcher = matchers.get(face.track_id)
                        if matcher is None:
                            matcher = matchers[face.track_id] = ColorMatcher(geometry.mask)
                        items[k] = matcher(items[k], sources[k])
                    items[k] = temporal(face.track_id, sources[k], items[k])
                if face.is_end:
                    temporal.reset(face.track_id)
                    matchers.pop(face.track_id, None)
                seen.append(PastedFace(face.track_id, np.asarray(face.matrix), size,
                                       face.alpha_hint * options.blend.strength))
                f.crop = f.restored = None
            if host_crops:
                items = geometry.from_host(items)
            t = clock.add("temporal", t)
            image = geometry.paste(job.frame.image, job.source, items,
                                   [f.face.matrix for f in job.faces],
                                   [f.face.alpha_hint for f in job.faces])
            job.source = None
            clock.add("paste", t)
            state.faces += len(seen)
            state.tracks.update(p.track_id for p in seen)
            if observer is not None:
                observer(job.frame.index, seen)
            state.put(q_encode, (job.frame, image))
        state.put(q_encode, _END)

    def encode() -> None:
        try:
            while True:
                item = state.get(q_encode)
                if item is _END:
                    break
                frame, image = item
                t = time.perf_counter()
                if sink.write(frame, image):
                    state.written += 1
                clock.add("encode", t)
            t = time.perf_counter()
            sink.close()
            clock.add("encode", t)
        except BaseException:
            sink.abort()
            raise
        finally:
            if state.stop.is_set():
                sink.abort()

    progress = _Progress(options.progress, source.output_frame_count, stdout, stderr)
    start = time.perf_counter()
    threads: list[threading.Thread] = []
    summary = None
    try:
        threads = [state.thread("decode", decode), state.thread("analyse", analyse),
                   state.thread("restore", restore), state.thread("paste", paste)]
        encoder = state.thread("encode", encode)
        threads.append(encoder)
        while encoder.is_alive():
            encoder.join(timeout=0.1)
            progress.update(state.written)
        if state.errors:
            raise state.errors[0]
        summary = Summary(
            output=Path(options.output), frames=state.written, faces=state.faces,
            tracks=len(state.tracks), seconds=time.perf_counter() - start,
            setup_seconds=setup_seconds, stage_seconds=dict(clock.seconds),
            restorer=restorer.describe(), batches=state.batches)
        return summary
    except BaseException:
        state.stop.set()
        deadline = time.perf_counter() + 1.5
        for t in threads:  # the encoder deletes its temp file on stop; others exit at a poll
            t.join(timeout=max(0.0, deadline - time.perf_counter()))
        state.alive = any(t.is_alive() for t in threads)
        raise
    finally:
        progress.close(summary)
