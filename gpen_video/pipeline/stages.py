"""The five stages of a run, as objects that know nothing of threads.

Every stage but the first has the same two methods: ``process(item)`` takes one item from the
stage before and returns the items (zero or more) it hands on, in order; ``finish()`` is called
once after the last item and returns what the stage still held. :class:`Decode` is the source
(iterate it). A stage is driven by :mod:`gpen_video.pipeline.wiring` — one thread per stage with
bounded queues between them, or all in the caller's thread — and gives the same output either
way: every decision (detection batches, restore batches) is made by counts, never by timing.

::

    Decode ──Frame──▶ AnalyseFaces ──FrameJob──▶ RestoreFaces ──FrameJob──▶ ComposeFaces
                                                                   ──(Frame, image)──▶ Encode

Each stage adds its busy time to a :class:`~gpen_video.pipeline.clock.StageClock` under the
names in :data:`~gpen_video.pipeline.clock.STAGES` and counts what it did (``Encode.written``,
``ComposeFaces.faces``/``.tracks``, ``RestoreFaces.batches``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from gpen_video.pipeline.clock import StageClock
from gpen_video.pipeline.jobs import FaceJob, FrameJob
from gpen_video.pipeline.summary import PastedFace


class Decode:
    """The source: decoded frames (``gpen_video.media.Frame``) in presentation order."""

    name = "decode"

    def __init__(self, source: Any, clock: StageClock) -> None:
        self.source = source
        self.clock = clock

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.source)
        t = time.perf_counter()
        for frame in it:
            t = self.clock.add("decode", t)
            yield frame
            t = time.perf_counter()


def _in_range(frame: Any) -> bool:
    return frame.in_range


def restored_frames(rng: Any, prime: int) -> Callable[[Any], bool]:
    """Which frames are restored: those of the output range (``rng``, a source's resolved
    range, or None for the whole clip), and the last ``prime`` warm-up frames before it
    (restored and smoothed to warm the temporal state, not written: ``RangeOptions.prime``)."""
    start = rng.start if rng is not None else 0
    prime_from = start - max(0, prime)

    def restores(frame: Any) -> bool:
        return frame.in_range or prime_from <= frame.index < start

    return restores


class AnalyseFaces:
    """Frames → :class:`FrameJob` with their tracked faces, in batches of ``batch`` frames,
    through :class:`gpen_video.faces.analyse.FaceAnalyser` (detection scheduling, then the
    track/smooth stream, which releases frames once their faces are final).

    ``detect``: the detection options (mode ``tracked`` or ``full``) and ``fps``/``cut_threshold``
    for its schedule; without them, full-frame detection on every ``every``-th frame."""

    name = "analyse"

    def __init__(self, detector: Any, stream: Any, clock: StageClock, *, batch: int = 1,
                 every: int = 1, largest: bool = False, detect: Any = None, fps: float = 25.0,
                 cut_threshold: float = 30.0, selection: Any = None) -> None:
        from gpen_video.faces.analyse import FaceAnalyser
        from gpen_video.faces.selection import TrackNumbers, TrackSelection
        from gpen_video.options import DetectOptions

        if detect is None:
            detect = DetectOptions(mode="full", every=max(1, every))
        self.analyser = FaceAnalyser(detector, stream, detect, cut_threshold=cut_threshold,
                                     fps=fps, clock=clock)
        self.batch = max(1, batch)
        # users' track ids (gpen_video.faces.selection), then which faces are restored
        self.numbers = TrackNumbers()
        self.selection = selection if selection is not None else TrackSelection(largest=largest)
        self._held: deque = deque()  # frames given to the analyser, waiting for their faces
        self._todo: list = []  # frames read, not yet analysed

    def process(self, frame: Any) -> list[FrameJob]:
        # detector batches, the detect-every phase and the scan cycles follow the clip's frame
        # numbers, so a chunk of the clip (gpen_video.farm.warmup) detects what a single run does
        self._todo.append(frame)
        if len(self._todo) < self.batch and (frame.index + 1) % self.batch != 0:
            return []
        todo, self._todo = self._todo, []
        return self._analyse(todo)

    def finish(self) -> list[FrameJob]:
        out = self._analyse(self._todo) if self._todo else []
        self._todo = []
        out += self._release(self.analyser.flush())
        # --tracks/--skip-tracks naming a track this run never saw: said before the output
        # is kept (the encoder after this stage has not closed it yet)
        self.selection.check_known(range(1, self.numbers.count + 1), "this run")
        return out

    def _analyse(self, frames: list) -> list[FrameJob]:
        self._held.extend(frames)
        return self._release(self.analyser.push([frame.image for frame in frames],
                                                frames[0].index))

    def _release(self, ready: list) -> list[FrameJob]:
        out = []
        for ff in ready:
            frame = self._held.popleft()
            faces = self.numbers.renumber(ff.faces)
            job = FrameJob(frame, [FaceJob(f) for f in self.selection.select(faces)], ff.cut)
            job.analysed = faces
            out.append(job)
        return out


class ReadFaces:
    """Frames → :class:`FrameJob` with the faces a faces file (``--faces-from``,
    :mod:`gpen_video.faces.faces_file`) holds for them, at once (no look-ahead, no detector):
    the same jobs :class:`AnalyseFaces` makes when it detects with the file's options. Frames
    outside the analysed range get no faces; a decoded frame the file hashed is checked."""

    name = "analyse"

    def __init__(self, faces: Any, crop_size: int, clock: StageClock, *, selection: Any,
                 source_name: str = "the input") -> None:
        self.faces = faces  # gpen_video.faces.faces_file.FacesFile
        self.crop_size = crop_size
        self.clock = clock
        self.selection = selection
        self.source_name = source_name
        self._records = faces.frames()
        self._next: Any = None

    def process(self, frame: Any) -> list[FrameJob]:
        from gpen_video.faces.faces_file import tracked_face

        t = time.perf_counter()
        self.faces.check_frame(frame.index, frame.image, self.source_name)
        record = self._record(frame.index)
        job = FrameJob(frame, [], False)
        if record is not None:
            faces = [tracked_face(f, frame.index, self.crop_size) for f in record.faces]
            job = FrameJob(frame, [FaceJob(f) for f in self.selection.select(faces)],
                           record.cut)
            job.analysed = faces
        self.clock.add("track", t)
        return [job]

    def finish(self) -> list[FrameJob]:
        close = getattr(self._records, "close", None)
        if close is not None:
            close()
        return []

    def _record(self, index: int) -> Any:
        """The file's line for frame ``index`` (frames come in increasing order)."""
        while self._next is None or self._next.index < index:
            self._next = next(self._records, None)
            if self._next is None:
                return None
        return self._next if self._next.index == index else None


class RestoreFaces:
    """Crops every face to restore and runs the restorer on batches of exactly ``batch`` faces
    gathered across frames (a partial batch only when more than ``max_pending`` frames wait, or
    at the end); hands frames on in order once all their faces are restored. Warm-up frames
    around the range are tracked but not restored, except those ``restores`` names (see
    :func:`restored_frames`)."""

    name = "restore"

    def __init__(self, restorer: Any, geometry: Any, clock: StageClock, *, batch: int,
                 max_pending: int | None = None,
                 restores: Callable[[Any], bool] | None = None) -> None:
        self.restores = restores or _in_range
        self.restorer = restorer
        self.geometry = geometry
        self.clock = clock
        self.batch = max(1, batch)
        self.max_pending = max(16, 2 * self.batch) if max_pending is None else max_pending
        self.batches = 0  # forward passes run
        self._pending: deque[FrameJob] = deque()
        self._waiting: list[FaceJob] = []

    def process(self, job: FrameJob) -> list[FrameJob]:
        if not self.restores(job.frame):
            for f in job.faces:
                f.skip()
        elif job.faces:
            t = time.perf_counter()
            job.source = self.geometry.frame(job.frame.image)  # torch: the one upload
            for f in job.faces:
                f.source = job.source
                self._waiting.append(f)
            self.clock.add("align", t)
        self._pending.append(job)
        while len(self._waiting) >= self.batch:
            self._run_batch(self._waiting[:self.batch])
            self._waiting = self._waiting[self.batch:]
        if self._waiting and len(self._pending) > self.max_pending:
            self._run_batch(self._waiting)
            self._waiting = []
        return self._emit_ready()

    def finish(self) -> list[FrameJob]:
        if self._waiting:
            self._run_batch(self._waiting)
            self._waiting = []
        return self._emit_ready()

    def _run_batch(self, jobs: list[FaceJob]) -> None:
        t = time.perf_counter()
        crops = self.geometry.crop([j.source for j in jobs], [j.face.matrix for j in jobs])
        t = self.clock.add("align", t)
        out = self.geometry.restore(self.restorer, crops)
        ready = self.geometry.mark()  # the compose stage's stream waits for it, not the host
        self.clock.add("restore", t)
        self.batches += 1
        for j, crop, restored in zip(jobs, crops, out):
            j.crop, j.restored, j.source, j.ready = crop, restored, None, ready

    def _emit_ready(self) -> list[FrameJob]:
        out = []
        while self._pending and self._pending[0].ready:
            out.append(self._pending.popleft())
        return out


class ComposeFaces:
    """Restored faces back into their frames: per track colour matching (on the host) and
    temporal smoothing (in crop space, where the crops are), then the paste. Hands on
    ``(frame, image)`` pairs in order.

    ``observer(index, faces)`` hears each written frame's pasted faces (tests, overlays). Frames
    ``restores`` names outside the range (:func:`restored_frames`) go through the per-track
    state, to warm it, and are not written."""

    name = "compose"

    def __init__(self, geometry: Any, temporal: Any, clock: StageClock, *, strength: float = 1.0,
                 color_match: bool = False,
                 observer: Callable[[int, list[PastedFace]], None] | None = None,
                 restores: Callable[[Any], bool] | None = None,
                 compare: str = "off", layers: bool = False,
                 track_strength: dict[int, float] | None = None) -> None:
        self.restores = restores or _in_range
        # hand on each frame's FaceLayer too (comp passes, EXR plates: gpen_video.compose.layer)
        self.layers = None
        if layers:
            from gpen_video.compose.reference import Blender

            # per-track strengths ride on the alphas, as for the geometry (below)
            self.layers = Blender(geometry.size, 1.0 if track_strength else strength)
        # per-track --strength ID=S: the geometry is then built with strength 1 and each face's
        # alpha carries its track's strength (``strength`` for the others: alpha × strength × 1
        # is alpha × strength exactly, so their pixels are those of a run without overrides)
        self.track_strength = dict(track_strength or {})
        self.geometry = geometry
        self.compare = compare  # off | side-by-side | split (gpen_video.review)
        self.temporal = temporal
        self.clock = clock
        self.strength = strength
        self.color_match = color_match
        self.observer = observer
        # colour matching is host code (compose/__init__ says so); temporal smoothing runs
        # where the crops are (numpy on the host, tensors on the geometry's device)
        self.host_crops = color_match
        self.faces = 0  # face instances pasted
        self.tracks: set[int] = set()
        self._matchers: dict[int, Any] = {}

    def process(self, job: FrameJob) -> list[tuple[Any, np.ndarray]]:
        if job.cut:
            self.temporal.reset()
            self._matchers.clear()
        if not self.restores(job.frame):
            return [(job.frame, job.frame.image)]
        original = job.frame.image.copy() if self.compare != "off" else None
        t = time.perf_counter()
        self.geometry.receive([f.ready for f in job.faces],
                              [job.source, *(f.crop for f in job.faces),
                               *(f.restored for f in job.faces)])
        items = self._adjusted(job)
        t = self.clock.add("temporal", t)
        alphas = [f.face.alpha_hint * self._strength(f.face.track_id) if self.track_strength
                  else f.face.alpha_hint for f in job.faces]
        layer = None
        if self.layers is not None and job.frame.in_range:
            from gpen_video.compose.layer import face_layer

            layer = face_layer(self.layers, self.geometry.to_host(items),
                               [f.face.matrix for f in job.faces],
                               alphas, job.frame.image.shape)
        image = self.geometry.paste(job.frame.image, job.source, items,
                                    [f.face.matrix for f in job.faces], alphas)
        job.source = None
        self.clock.add("paste", t)
        seen = [PastedFace(f.face.track_id, np.asarray(f.face.matrix), self.geometry.size,
                           f.face.alpha_hint * self._strength(f.face.track_id))
                for f in job.faces]
        for f in job.faces:
            f.crop = f.restored = None
        if not job.frame.in_range:  # a primed frame: it warmed the temporal state
            return [(job.frame, image)]
        self.faces += len(seen)
        self.tracks.update(p.track_id for p in seen)
        if self.observer is not None:
            self.observer(job.frame.index, seen)
        if original is not None:
            from gpen_video.review import compose

            image = compose(self.compare, original, image)
        if self.layers is not None:
            return [(job.frame, image, layer)]
        return [(job.frame, image)]

    def finish(self) -> list:
        return []

    def _strength(self, track_id: int) -> float:
        return self.track_strength.get(track_id, self.strength)

    def _adjusted(self, job: FrameJob) -> list:
        """The restored crops after colour matching and temporal smoothing, as the geometry
        wants them; per-track state starts and ends with the track."""
        items = [f.restored for f in job.faces]
        sources = [f.crop for f in job.faces]
        if self.host_crops and job.faces:
            sources = self.geometry.to_host(sources)
            items = self.geometry.to_host(items)
        for k, f in enumerate(job.faces):
            face = f.face
            if face.is_start:
                self._forget(face.track_id)
            if self.host_crops:
                items[k] = self._matcher(face.track_id)(items[k], sources[k])
            items[k] = self.temporal(face.track_id, sources[k], items[k])
            if face.is_end:
                self._forget(face.track_id)
        return self.geometry.from_host(items) if self.host_crops else items

    def _matcher(self, track_id: int) -> Any:
        from gpen_video.compose.colour import ColorMatcher

        matcher = self._matchers.get(track_id)
        if matcher is None:
            matcher = self._matchers[track_id] = ColorMatcher(self.geometry.mask)
        return matcher

    def _forget(self, track_id: int) -> None:
        self.temporal.reset(track_id)
        self._matchers.pop(track_id, None)


class Encode:
    """The sink: writes each ``(frame, image)`` (``VideoSink.write`` decides what is output —
    frames before the range are not); ``finish`` closes the file (temporary → final name)."""

    name = "encode"

    def __init__(self, sink: Any, clock: StageClock) -> None:
        self.sink = sink
        self.clock = clock
        self.written = 0

    def process(self, item: tuple) -> list:
        frame, image, *layer = item  # (frame, image[, FaceLayer]): the layer for comp passes
        t = time.perf_counter()
        if self.sink.write(frame, image, *layer):
            self.written += 1
        self.clock.add("encode", t)
        return []

    def finish(self) -> list:
        t = time.perf_counter()
        self.sink.close()
        self.clock.add("encode", t)
        return []

    def abort(self) -> None:
        """Stop writing and delete the temporary output (called from this stage's thread)."""
        self.sink.abort()
