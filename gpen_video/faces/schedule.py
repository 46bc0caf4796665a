"""When the full-frame scan runs, and which of its parts on which frame.

A scan *cycle* visits every :class:`~gpen_video.faces.scan_plan.ScanPart` of the frame's plan.
Cycles are fixed windows of frame numbers, ``[k·every, (k+1)·every)``; a cycle's parts are
spread evenly over its frames (a one-part plan scans on the cycle's first frame), so every part
is looked at once per ``every`` frames and a face that appears anywhere is seen within ``every``
frames. At the first frame of the stream and of every shot, the whole plan runs at once (nothing
is tracked yet). When a track is lost, the plan starts again on the next frame, parts that
contain the lost face first, spread up to a cycle boundary at least ``every / 2`` frames away.

Why fixed windows rather than cycles counted from each shot's start: the frame numbers are the
clip's (:meth:`gpen_video.faces.FaceAnalyser.push` is told where its stream starts), so a chunk
of a clip (``--workers``, the farm), which usually starts in the middle of a shot, scans on the
same frames as a single run of the whole clip does, and both find a new face on the same frame.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from gpen_video.faces.scan_plan import ScanPart, plan_scan


class ScanSchedule:
    """``parts_for(index, shape, shot_start)`` once per frame, in order; ``lost(boxes)``
    when tracks are lost."""

    def __init__(self, every: int, min_iod: float, tile_side: int = 640) -> None:
        if every < 1:
            raise ValueError(f"ScanSchedule: every must be >= 1, got {every}")
        self.every = int(every)
        self.min_iod = float(min_iod)
        self.tile_side = int(tile_side)
        self._plans: dict[tuple[int, int], list[ScanPart]] = {}
        self._queue: deque[ScanPart] = deque()
        self._cycle_end = 0  # first frame of the next cycle
        self._restart = False
        self._priority: list[np.ndarray] = []

    def plan(self, shape: tuple[int, ...]) -> list[ScanPart]:
        key = (int(shape[1]), int(shape[0]))
        if key not in self._plans:
            self._plans[key] = plan_scan(key[0], key[1], self.min_iod, self.tile_side)
        return self._plans[key]

    def lost(self, boxes: list[np.ndarray]) -> None:
        """Tracks were lost (their last boxes): the next frame starts a new cycle."""
        self._restart = True
        self._priority.extend(np.asarray(b, dtype=np.float64) for b in boxes)

    def parts_for(self, index: int, shape: tuple[int, ...], shot_start: bool) -> list[ScanPart]:
        """The scan parts to run on frame ``index`` (``shot_start``: first frame of a shot)."""
        plan = self.plan(shape)
        if shot_start:
            self._queue.clear()
            self._restart = False
            self._priority.clear()
            self._cycle_end = self._boundary(index, 1)
            return list(plan)
        if self._restart or index >= self._cycle_end:
            self._queue = deque(self._ordered(plan))
            self._cycle_end = self._boundary(index, (self.every + 1) // 2 if self._restart
                                             else 1)
            self._restart = False
            self._priority.clear()
        if not self._queue:
            return []
        frames_left = max(1, self._cycle_end - index)
        count = math.ceil(len(self._queue) / frames_left)
        return [self._queue.popleft() for _ in range(count)]

    def _boundary(self, index: int, at_least: int) -> int:
        """The first multiple of ``every`` at least ``at_least`` frames after ``index``."""
        return -(-(index + at_least) // self.every) * self.every

    def _ordered(self, plan: list[ScanPart]) -> list[ScanPart]:
        if not self._priority or len(plan) == 1:
            return list(plan)

        def holds_lost(part: ScanPart) -> bool:
            x0, y0, x1, y1 = part.region
            for box in self._priority:
                cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
                if x0 <= cx < x1 and y0 <= cy < y1:
                    return True
            return False

        return sorted(plan, key=lambda part: not holds_lost(part))
