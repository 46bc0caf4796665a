"""Busy time per stage: the stages read the clock; whoever runs them (the CLI, ``bench``) owns it.

Each stage's time is written by one thread only (the stage's own), so no lock is needed.
``gpen-video bench`` passes a subclass that also records every interval
(:class:`gpen_video.bench.measure.RecordingClock`).
"""

from __future__ import annotations

import time

STAGES = ("decode", "detect", "track", "align", "restore", "temporal", "paste", "encode")


class StageClock:
    """Busy seconds per name in :data:`STAGES`."""

    def __init__(self) -> None:
        self.seconds = {name: 0.0 for name in STAGES}

    def add(self, stage: str, since: float) -> float:
        """Count ``now − since`` for ``stage``; returns ``now`` (the next interval's start)."""
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now
