"""The records that travel between the stages: one :class:`FrameJob` per decoded frame, holding
one :class:`FaceJob` per face to restore in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class FaceJob:
    """One face of one frame, from its track to its restored crop."""

    face: Any  # gpen_video.faces.TrackedFace
    source: Any = None  # its frame as the geometry holds it (FaceGeometry.frame)
    crop: Any = None  # aligned input crop (compose Convention: numpy HWC or tensor CHW)
    restored: Any = None  # the restorer's output, same kind
    ready: Any = None  # CUDA event after its batch (FaceGeometry.mark → receive), or None

    @property
    def done(self) -> bool:
        return self.restored is not None

    def skip(self) -> None:
        """Mark it done without restoring it (a warm-up frame before the range)."""
        self.restored = SKIPPED


SKIPPED = object()  # FaceJob.restored of a face that is tracked but not restored


@dataclass
class FrameJob:
    """One decoded frame, its faces and whether a shot cut starts at it."""

    frame: Any  # gpen_video.media.Frame
    faces: list[FaceJob]
    cut: bool
    source: Any = None  # the frame as the geometry holds it, when it has faces to restore
    analysed: Any = None  # every face the faces stage reported (before selection), or None

    @property
    def ready(self) -> bool:
        return all(f.done for f in self.faces)
