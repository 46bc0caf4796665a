"""Multi-face tracking: persistent track IDs from per-frame detections.

:class:`FaceTracker` keeps any number of tracks. For each frame with detections:

1. Every live track predicts its box and landmarks for this frame (constant velocity, from an
   exponentially smoothed velocity of its past detections; through misses and frames without
   detection it keeps moving).
2. The cost of giving detection *j* to track *i* is ``(1 − IoU) + ½·d/gate`` where ``IoU`` is
   between the predicted and detected boxes and ``d`` the mean distance between predicted and
   detected landmarks in units of the track's inter-ocular distance. A pair is allowed only if
   ``IoU ≥ min_iou`` and ``d ≤ gate`` (the landmark gate, widened by 25 % per missed frame).
   The landmark term breaks ties when boxes overlap (faces crossing).
3. The assignment is the Hungarian solution (:func:`scipy.optimize.linear_sum_assignment`) over
   the allowed pairs.
4. A detection left over starts a tentative track; a tentative track is confirmed after
   ``confirm_hits`` detections, or at once by a detection scoring at least ``confirm_score``
   (a face seen clearly in only one or two frames is real, and is restored), and dropped at its
   second consecutive miss. (:class:`~gpen_video.faces.stream.FaceStream` also confirms a
   tentative track that is still seen when its shot or the clip ends: a face in a 1–2 frame
   clip never had the chance of ``confirm_hits`` detections.) A confirmed track
   ends after more than ``max_misses`` consecutive misses (frames where detection ran and did
   not find it); shorter gaps are kept (the stream fills them by interpolation).
5. A shot cut ends every track: no track ever continues across a cut.

Frames where detection did not run (detect-every-N) are passed as ``None``: nothing is matched,
no miss is counted, predictions advance.

This module only decides identities. :class:`gpen_video.faces.stream.FaceStream` adds the
smoothing, the gap filling and the output timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from gpen_video.faces.types import Detection
from gpen_video.options import TrackOptions

_VELOCITY_BLEND = 0.6  # weight of the newest velocity in the smoothed velocity
_TENTATIVE_MISSES = 1  # a tentative track survives this many consecutive misses
_GATE_WIDENING = 0.25  # landmark gate grows by this fraction per missed frame
_NO = 1e6


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``a`` (N×4) and ``b`` (M×4), ``x0, y0, x1, y1``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class Track:
    """The tracker's state of one face (mutable; read it, don't change it)."""

    track_id: int
    first_frame: int
    last_hit: int
    detection: Detection  # the latest assigned detection
    hits: int = 1
    misses: int = 0  # consecutive frames where detection ran and missed this face
    confirmed: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(14))  # 10 landmark + 4 box

    def _state(self) -> np.ndarray:
        return np.concatenate([self.detection.landmarks.reshape(-1), self.detection.box])

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``(landmarks (5, 2), box (4,))`` at ``frame``."""
        state = self._state() + self.velocity * (frame - self.last_hit)
        return state[:10].reshape(5, 2), state[10:]

    @property
    def inter_ocular(self) -> float:
        return max(self.detection.inter_ocular, 1.0)

    def hit(self, frame: int, detection: Detection) -> None:
        step = frame - self.last_hit
        new = np.concatenate([detection.landmarks.reshape(-1), detection.box])
        if step > 0:
            measured = (new - self._state()) / step
            blend = _VELOCITY_BLEND if self.hits > 1 else 1.0
            self.velocity = blend * measured + (1.0 - blend) * self.velocity
        self.detection = detection
        self.last_hit = frame
        self.hits += 1
        self.misses = 0


@dataclass(frozen=True)
class TrackEnd:
    """A track that ended on this frame's update."""

    track_id: int
    last_hit: int  # the last frame it was detected on
    reason: str  # "misses" | "cut" | "dropped" (tentative, never confirmed)
    confirmed: bool


@dataclass(frozen=True)
class TrackerStep:
    """What one :meth:`FaceTracker.update` decided."""

    frame_index: int
    hits: dict[int, Detection]  # track id → its detection on this frame
    missed: tuple[int, ...]  # live tracks that detection ran for and did not find
    started: tuple[int, ...]  # new (tentative) tracks, also in ``hits``
    confirmed: tuple[int, ...]  # tracks confirmed on this frame
    ended: tuple[TrackEnd, ...]
    cut: bool


class FaceTracker:
    """Persistent IDs for any number of faces; see the module docstring."""

    def __init__(self, options: TrackOptions = TrackOptions()) -> None:
        self.options = options
        self.tracks: dict[int, Track] = {}
        self._next_id = 0
        self._last_frame: int | None = None

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _confirms(self, hits: int, detection: Detection) -> bool:
        """Whether a tentative track with ``hits`` detections, the latest ``detection``, is
        confirmed now."""
        sure = self.options.confirm_score
        return hits >= self.options.confirm_hits or (sure is not None and
                                                     detection.score >= sure)

    def _cost(self, tracks: list[Track], detections: Sequence[Detection], frame: int) -> np.ndarray:
        opts = self.options
        cost = np.full((len(tracks), len(detections)), _NO)
        if not tracks or not detections:
            return cost
        det_boxes = np.array([d.box for d in detections])
        det_points = np.array([d.landmarks for d in detections])
        for i, track in enumerate(tracks):
            points, box = track.predict(frame)
            iou = box_iou(box, det_boxes)[0]
            dist = np.linalg.norm(det_points - points[None], axis=2).mean(axis=1)
            dist = dist / track.inter_ocular
            gate = opts.landmark_gate * (1.0 + _GATE_WIDENING * track.misses)
            ok = (iou >= opts.min_iou) & (dist <= gate)
            cost[i, ok] = (1.0 - iou[ok]) + 0.5 * dist[ok] / gate
        return cost

    def update(self, frame_index: int, detections: Sequence[Detection] | None,
               cut: bool = False) -> TrackerStep:
        """Assign this frame's detections (``None``: detection did not run on this frame).

        Frames must come in increasing order. ``cut``: this frame starts a new shot; every track
        ends before it.
        """
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"FaceTracker.update: frame {frame_index} after {self._last_frame}")
        self._last_frame = frame_index
        ended: list[TrackEnd] = []
        if cut:
            for track in self.tracks.values():
                ended.append(TrackEnd(track.track_id, track.last_hit,
                                      "cut" if track.confirmed else "dropped", track.confirmed))
            self.tracks.clear()
        hits: dict[int, Detection] = {}
        started: list[int] = []
        confirmed: list[int] = []
        missed: list[int] = []
        if detections is not None:
            live = list(self.tracks.values())
            cost = self._cost(live, detections, frame_index)
            matched_tracks: set[int] = set()
            matched_dets: set[int] = set()
            if live and len(detections):
                rows, cols = linear_sum_assignment(cost)
                for r, c in zip(rows, cols):
                    if cost[r, c] < _NO:
                        track = live[r]
                        track.hit(frame_index, detections[c])
                        hits[track.track_id] = detections[c]
                        matched_tracks.add(track.track_id)
                        matched_dets.add(c)
                        if not track.confirmed and self._confirms(track.hits,
                                                                  detections[c]):
                            track.confirmed = True
                            confirmed.append(track.track_id)
            for track in live:
                if track.track_id in matched_tracks:
                    continue
                track.misses += 1
                missed.append(track.track_id)
                limit = self.options.max_misses if track.confirmed else _TENTATIVE_MISSES
                if track.misses > limit:
                    ended.append(TrackEnd(track.track_id, track.last_hit,
                                          "misses" if track.confirmed else "dropped",
                                          track.confirmed))
                    del self.tracks[track.track_id]
            for c, detection in enumerate(detections):
                if c in matched_dets:
                    continue
                track = Track(self._new_id(), frame_index, frame_index, detection)
                if self._confirms(1, detection):
                    track.confirmed = True
                    confirmed.append(track.track_id)
                self.tracks[track.track_id] = track
                hits[track.track_id] = detection
                started.append(track.track_id)
        return TrackerStep(frame_index, hits, tuple(missed), tuple(started), tuple(confirmed),
                           tuple(ended), cut)

    def end_all(self) -> tuple[TrackEnd, ...]:
        """End every track (end of stream)."""
        ended = tuple(TrackEnd(t.track_id, t.last_hit, "end" if t.confirmed else "dropped",
                               t.confirmed) for t in self.tracks.values())
        self.tracks.clear()
        return ended
