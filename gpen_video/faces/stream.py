"""The streaming faces stage: push detections frame by frame, pop final per-frame faces later.

::

    stream = FaceStream(track_opts, smooth_opts, fps=25.0, crop_size=512, ramp_frames=5)
    for frame in frames:                              # in decode order
        dets = detector.detect([frame])[0]            # or None on frames not detected (every-N)
        for ready in stream.push(dets, frame):        # 0, 1 (or, rarely, more) FrameFaces
            restore_and_encode(ready.frame_index, ready.faces)
    for ready in stream.flush():                      # end of stream: everything left
        restore_and_encode(ready.frame_index, ready.faces)

Every pushed frame comes out exactly once, in order, as :class:`FrameFaces` (possibly with no
faces), ``stream.delay`` frames after it was pushed (all remaining ones at :meth:`flush`). What
comes out is final: later frames never change it. The caller keeps the last ``delay + 1`` frames
to pair them with their faces.

Why a delay, and why this one (``delay = max(⌈lag_seconds·fps⌉, every·(max_misses+1) +
ramp_frames)``):

* The RTS smoother is non-causal: the estimate for frame *f* improves with every measurement
  after *f* until the smoother's memory is used up. With the adaptive model here that memory is
  short — a few frames on a still face, less through a manoeuvre, where process noise is
  raised. In ``benchmarks/face_stability.py`` (real detector, smooth motion) the RMS error stops
  falling after about 8 frames of look-ahead (``benchmarks/RESULTS.md``, "B1" and "Numbers behind
  design choices"). 0.5 s (12–15 frames at 24–30 fps) is on the flat end of that curve with margin for slower motion at higher frame rates, loses nothing
  measurable to the full-clip smoother, and keeps what the pipeline must hold small (≈ 15
  decoded frames: 90 MB at 1080p 8-bit) and the latency short.
* Track decisions also need look-ahead: a gap is filled only if the face comes back, which is
  known within ``every·(max_misses+1)`` frames, and a fade-out must start ``ramp_frames`` before
  a track's last frame. The delay is raised to cover both, so no emitted frame is ever wrong
  about whether a face is there.

Per-frame output, for each **confirmed** track whose span covers the frame (a tentative track
still seen when its shot or the clip ends is confirmed then, so faces of 1–2 frame clips and
shots are restored; tracks that die unconfirmed before that are never emitted; frames pushed before a track's confirmation are emitted with it
as long as they have not left the stream yet): a :class:`TrackedFace` with the smoothed frame→crop
matrix for ``crop_size``, landmarks, detection flags and the paste-ramp information.

A track's span runs from its first detection to its last. Frames inside it without a detection
(missed, or not detected under detect-every-N) are filled by the smoother; at a cut or the end
of the stream, trailing frames where detection did not run are kept too (nothing says the face
left). Shot cuts come from the caller (``push(..., cut=True)``) or, when a frame is given, from
:class:`~gpen_video.faces.cuts.CutDetector`; a cut ends every track, so no smoothing, gap filling
or identity crosses it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpen_video.faces.align import TEMPLATE_IOD_512, TEMPLATE_SIZE, landmarks_to_params, \
    params_to_matrix, template_in_frame
from gpen_video.faces.cuts import CutDetector
from gpen_video.faces.smooth import SmoothTuning, TrackSmoother
from gpen_video.faces.track import FaceTracker, TrackerStep
from gpen_video.faces.types import Detection, FrameFaces, SimilarityParams, TrackedFace
from gpen_video.options import SmoothOptions, TrackOptions


def measurement(params: SimilarityParams, reference: float) -> np.ndarray:
    """The filter's 4-vector for ``params``, normalised by the track's ``reference`` scale."""
    return np.array([params.cx / reference, params.cy / reference,
                     math.log(params.width / reference), params.angle])


def from_measurement(z: np.ndarray, reference: float) -> SimilarityParams:
    """Inverse of :func:`measurement`."""
    return SimilarityParams(float(z[0] * reference), float(z[1] * reference),
                            float(math.exp(z[2]) * reference), float(z[3]))


@dataclass
class _StreamTrack:
    track_id: int
    first_frame: int
    reference: float  # inter-ocular distance implied by the first detection's fit
    smoother: TrackSmoother
    starts_shot: bool  # first detected on the first frame of its shot
    detections: dict[int, Detection]
    last_hit: int
    confirmed: bool = False
    miss_since_hit: bool = False
    ended: bool = False
    end_frame: int | None = None
    ends_shot: bool = False
    first_emitted: int | None = None


@dataclass
class _Pending:
    frame_index: int
    cut: bool
    shot_start: int


class FaceStream:
    """Tracking + smoothing + output timing; see the module docstring."""

    def __init__(
        self,
        track: TrackOptions = TrackOptions(),
        smooth: SmoothOptions = SmoothOptions(),
        fps: float = 25.0,
        crop_size: int = TEMPLATE_SIZE,
        ramp_frames: int = 5,
        detect_every: int = 1,
        tuning: SmoothTuning = SmoothTuning(),
    ) -> None:
        """Raises:
            ValueError: unknown smoothing method, non-positive fps/crop size/detect_every."""
        if fps <= 0 or crop_size <= 0 or detect_every < 1:
            raise ValueError(f"FaceStream: need fps > 0, crop_size > 0, detect_every >= 1 "
                             f"(got {fps}, {crop_size}, {detect_every})")
        TrackSmoother(smooth.method, tuning)  # validates the method name
        self.track_options = track
        self.smooth_options = smooth
        self.fps = float(fps)
        self.crop_size = int(crop_size)
        self.ramp_frames = max(0, int(ramp_frames))
        self.tuning = tuning
        self.lag = max(0, math.ceil(smooth.lag_seconds * fps - 1e-9))
        self.delay = max(self.lag, detect_every * (track.max_misses + 1) + self.ramp_frames)
        self.tracker = FaceTracker(track)
        self.cuts = CutDetector(threshold=track.cut_threshold)
        self._tracks: dict[int, _StreamTrack] = {}
        self._pending: deque[_Pending] = deque()
        self._next_frame = 0
        self._shot_start = 0
        self._finished = False

    # -- input --------------------------------------------------------------------------------

    def push(
        self,
        detections: Sequence[Detection] | None,
        frame: np.ndarray | None = None,
        cut: bool | None = None,
    ) -> list[FrameFaces]:
        """Add the next frame's detections; return the frames that are now final.

        ``detections``: this frame's faces (``[]``: detection ran and found none; ``None``: it
        did not run on this frame). ``frame``: the RGB frame, used only for cut detection when
        ``cut`` is None. ``cut``: True if this frame starts a new shot (overrides detection).

        Raises:
            RuntimeError: after :meth:`flush`.
        """
        if self._finished:
            raise RuntimeError("FaceStream.push after flush")
        index = self._next_frame
        self._next_frame += 1
        if cut is None:
            cut = self.cuts.update(frame) if frame is not None else False
        elif frame is not None:
            self.cuts.update(frame)  # keep the detector's previous frame current
        cut = bool(cut) and index > 0
        if cut:
            self._end_shot(index - 1)
            self._shot_start = index
        step = self.tracker.update(index, detections, cut=cut)
        self._apply(step, detections is not None)
        self._pending.append(_Pending(index, cut, self._shot_start))
        out = []
        while len(self._pending) > self.delay:
            out.append(self._emit(self._pending.popleft()))
        return out

    def flush(self) -> list[FrameFaces]:
        """End of stream: end every track and return every frame still held."""
        if not self._finished:
            self._finished = True
            self.tracker.end_all()
            self._end_shot(self._next_frame - 1)
        out = []
        while self._pending:
            out.append(self._emit(self._pending.popleft()))
        return out

    @property
    def frames_pushed(self) -> int:
        return self._next_frame

    # -- bookkeeping --------------------------------------------------------------------------

    def _end_shot(self, last_frame: int) -> None:
        """Every live track ends with the shot whose last frame is ``last_frame``."""
        for track in list(self._tracks.values()):
            if track.ended:
                continue
            if not track.confirmed:
                if track.miss_since_hit:
                    del self._tracks[track.track_id]
                    continue
                # still seen when the shot ends: it ran out of frames, not of detections
                track.confirmed = True
            # trailing frames without a detection attempt belong to the track; misses do not
            end = track.last_hit if track.miss_since_hit else last_frame
            self._finish(track, end, ends_shot=end == last_frame)

    def _finish(self, track: _StreamTrack, end_frame: int, ends_shot: bool) -> None:
        track.ended = True
        track.end_frame = end_frame
        track.ends_shot = ends_shot

    def _apply(self, step: TrackerStep, attempted: bool) -> None:
        index = step.frame_index
        for end in step.ended:
            track = self._tracks.get(end.track_id)
            if track is None or track.ended:
                continue
            if end.reason == "dropped" or not end.confirmed:
                del self._tracks[end.track_id]
            else:  # "misses" ("cut" was handled by _end_shot)
                self._finish(track, end.last_hit, ends_shot=False)
        for track_id, detection in step.hits.items():
            params = landmarks_to_params(detection.landmarks)
            track = self._tracks.get(track_id)
            if track is None:
                reference = params.width * TEMPLATE_IOD_512 / TEMPLATE_SIZE
                track = _StreamTrack(
                    track_id, index, reference,
                    TrackSmoother(self.smooth_options.method, self.tuning,
                                  iod_per_width=TEMPLATE_IOD_512 / TEMPLATE_SIZE),
                    starts_shot=index == self._shot_start, detections={}, last_hit=index)
                self._tracks[track_id] = track
            track.smoother.add(index, measurement(params, track.reference), detection.score)
            track.detections[index] = detection
            track.last_hit = index
            track.miss_since_hit = False
        for track_id in step.confirmed:
            if track_id in self._tracks:
                self._tracks[track_id].confirmed = True
        live = self.tracker.tracks
        for track_id, track in self._tracks.items():
            if track.ended or track_id in step.hits or track_id not in live:
                continue
            track.smoother.add(index, None)
            if attempted:
                track.miss_since_hit = True

    # -- output -------------------------------------------------------------------------------

    def _emit(self, pending: _Pending) -> FrameFaces:
        f = pending.frame_index
        newest = self._next_frame - 1
        faces = []
        for track_id in sorted(self._tracks):
            track = self._tracks[track_id]
            if not track.confirmed or f < track.first_frame:
                continue
            if track.ended:
                assert track.end_frame is not None
                if f > track.end_frame:
                    continue
            elif f > track.last_hit and track.miss_since_hit:
                continue
            faces.append(self._face(track, f, newest))
        # forget what no later frame needs
        for track_id in list(self._tracks):
            track = self._tracks[track_id]
            if track.ended and (track.end_frame is None or track.end_frame <= f):
                del self._tracks[track_id]
                continue
            if f + 1 >= track.first_frame:
                track.smoother.forget_before(f + 1)
            for k in [k for k in track.detections if k <= f]:
                del track.detections[k]
        return FrameFaces(f, tuple(faces), pending.cut)

    def _face(self, track: _StreamTrack, f: int, newest: int) -> TrackedFace:
        upto = track.end_frame if track.ended else newest
        upto = min(upto, f + self.lag)  # fixed lag: look exactly `lag` frames ahead
        z = track.smoother.estimate(f, upto)
        params = from_measurement(z, track.reference)
        detection = track.detections.get(f)
        if track.first_emitted is None:
            track.first_emitted = f
        since = f - track.first_emitted
        to_end = (track.end_frame - f) if track.ended and track.end_frame is not None else None
        ramp = self.ramp_frames
        alpha = 1.0
        if ramp > 0:
            if not (track.starts_shot and track.first_emitted == track.first_frame):
                alpha = min(alpha, (since + 1) / (ramp + 1))
            if to_end is not None and not track.ends_shot:
                alpha = min(alpha, (to_end + 1) / (ramp + 1))
        landmarks = detection.landmarks if detection is not None else template_in_frame(params)
        return TrackedFace(
            track_id=track.track_id,
            frame_index=f,
            matrix=params_to_matrix(params, self.crop_size),
            crop_size=self.crop_size,
            params=params,
            landmarks=landmarks,
            detected=detection is not None,
            score=detection.score if detection is not None else 0.0,
            confirmed=True,
            is_start=since == 0,
            is_end=to_end == 0,
            frames_since_start=since,
            frames_to_end=to_end,
            alpha_hint=float(alpha),
            box=detection.box if detection is not None else None,
        )
