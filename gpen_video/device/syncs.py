"""Counting host synchronisations: the moments the CPU waits for the GPU.

Every wait of the host for queued device work stalls the thread that makes it until all work
queued before it (on its stream) is done, which is how one slow stage starves the others. The
pipeline's device code makes each such wait through :class:`~gpen_video.device.lane.DeviceLane`,
which records it here by stage (the pipeline's stage names) and kind:

* ``download`` — a device→host copy whose result the host reads (a finished frame, a crop);
* ``item`` — one value read back (``.item()``, ``float(t)``, a data-dependent branch);
* ``synchronize`` — ``torch.cuda.synchronize()`` or a stream's;
* ``event_wait`` — the host waiting on an event.
"""

from __future__ import annotations

import threading
from collections import Counter

KINDS = ("download", "item", "synchronize", "event_wait")


class HostSyncs:
    """Thread-safe counts of host syncs by (stage, kind)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, stage: str, kind: str, n: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown host sync kind {kind!r}: one of {', '.join(KINDS)}")
        with self._lock:
            self._counts[(stage, kind)] += n

    def total(self, stages: tuple[str, ...] | None = None) -> int:
        """All syncs, or those of ``stages``."""
        with self._lock:
            return sum(n for (stage, _), n in self._counts.items()
                       if stages is None or stage in stages)

    def by_stage(self) -> dict[str, dict[str, int]]:
        """``{stage: {kind: count}}`` of every stage that synced."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (stage, kind), n in sorted(self._counts.items()):
                out.setdefault(stage, {})[kind] = n
        return out

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
