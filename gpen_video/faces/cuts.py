"""Shot-cut detection: a frame-difference test on a small thumbnail.

Each frame is reduced to a ``thumb_width``-pixel-wide RGB thumbnail (``cv2.INTER_AREA`` box
averages, halving first while the frame is more than four times too wide; the averaging removes
noise, grain and small motion; 8-bit scale also for 16-bit sources). The score of
a frame is the mean absolute difference (0–255) between its thumbnail and the previous frame's.
A frame starts a new shot when its score is at least ``threshold`` **and** at least ``ratio``
times the median score of the previous ``history`` frames plus ``floor``: the absolute test
rejects ordinary motion, the relative one rejects long fast pans and handheld shake, whose
scores are high on every frame, not just one.

Fades and dissolves are not cuts (no single frame changes enough); a face tracked through one
keeps its track, which is what paste-back wants.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np


class CutDetector:
    """Feed frames in order with :meth:`update`; it returns True on the first frame of a shot.

    The very first frame is not a cut (it starts the stream; callers know that already).
    """

    def __init__(
        self,
        threshold: float = 30.0,
        ratio: float = 3.0,
        floor: float = 2.0,
        history: int = 8,
        thumb_width: int = 64,
    ) -> None:
        self.threshold = float(threshold)
        self.ratio = float(ratio)
        self.floor = float(floor)
        self.thumb_width = int(thumb_width)
        self._previous: np.ndarray | None = None
        self._scores: deque[float] = deque(maxlen=history)
        self.last_score = 0.0

    def thumbnail(self, frame: np.ndarray) -> np.ndarray:
        """The float32 ``thumb_width``-wide thumbnail (0–255 scale) of an RGB frame."""
        if frame.ndim == 2:
            frame = frame[:, :, None]
        frame = frame[:, :, :3]
        h, w = frame.shape[:2]
        tw = min(self.thumb_width, w)
        th = max(1, round(h * tw / w))
        thumb = np.ascontiguousarray(frame)
        # halved while more than 4× too wide (OpenCV's fast 2×2 average), then averaged to
        # size: the same box average to within rounding, at a quarter of one 30× INTER_AREA's
        # cost at 1080p
        while thumb.shape[1] >= 4 * tw and thumb.shape[0] >= 4 * th:
            thumb = cv2.resize(thumb, (thumb.shape[1] // 2, thumb.shape[0] // 2),
                               interpolation=cv2.INTER_AREA)
        thumb = cv2.resize(thumb, (tw, th), interpolation=cv2.INTER_AREA)
        thumb = thumb.astype(np.float32)
        if frame.dtype == np.uint16:
            thumb *= np.float32(255.0 / 65535.0)
        return thumb

    def score(self, frame: np.ndarray) -> float:
        """Mean absolute thumbnail difference to the previous frame (does not update state)."""
        thumb = self.thumbnail(frame)
        if self._previous is None or self._previous.shape != thumb.shape:
            return float("inf") if self._previous is not None else 0.0
        return float(np.mean(np.abs(thumb - self._previous)))

    def update(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` (the next frame of the stream) starts a new shot."""
        thumb = self.thumbnail(frame)
        if self._previous is None:
            self._previous = thumb
            return False
        if self._previous.shape != thumb.shape:  # the frame size changed: a new shot
            self._previous = thumb
            self._scores.clear()
            return True
        score = float(np.mean(np.abs(thumb - self._previous)))
        self._previous = thumb
        self.last_score = score
        typical = float(np.median(self._scores)) if self._scores else 0.0
        cut = score >= self.threshold and score >= self.ratio * typical + self.floor
        if cut:
            self._scores.clear()
        else:
            self._scores.append(score)
        return cut

    def reset(self) -> None:
        """Forget the previous frame (the next frame is not compared with anything)."""
        self._previous = None
        self._scores.clear()
