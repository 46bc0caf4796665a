"""What a run did: :class:`Summary` (returned by :func:`gpen_video.pipeline.run`, printed at the
end) and :class:`PastedFace` (what a run's observer hears about each face it pasted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def count(n: int, one: str, many: str | None = None) -> str:
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
            f"gpen-video: wrote {self.output}: {count(self.frames, 'frame')}, "
            f"{count(self.faces, 'face')} in {count(self.tracks, 'track')}, "
            f"{self.fps:.2f} fps ({self.seconds:.1f}s + "
            f"{self.setup_seconds:.1f}s setup)\n"
            f"  restorer: {self.restorer}, {count(self.batches, 'batch', 'batches')}\n"
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
    """What :func:`gpen_video.pipeline.run`'s ``observer`` hears about each face it pasted."""

    track_id: int
    matrix: np.ndarray  # 2×3 frame → crop, for ``crop_size``
    crop_size: int
    alpha: float  # ramp × strength actually used
