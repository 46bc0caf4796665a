"""What a run did: :class:`Summary` (returned by :func:`gpen_video.pipeline.run`, printed at the
end) and :class:`PastedFace` (what a run's observer hears about each face it pasted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_DETECTION = ("detect", "track")  # lane stages of the analyse step (gpen_video.device.lane)


def syncs_per_frame(host_syncs: dict[str, dict[str, int]], frames: int,
                    detection: bool = False) -> float:
    """Host syncs (``{stage: {kind: n}}``, as :class:`gpen_video.device.HostSyncs` counts
    them) per written frame: of the restore/composite path, or of detection. The end-of-run
    ``report`` sync is neither."""
    total = sum(n for stage, kinds in host_syncs.items()
                if stage != "report" and (stage in _DETECTION) == detection
                for n in kinds.values())
    return total / frames if frames else 0.0


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
    # host syncs made through the geometry's DeviceLane, {stage: {kind: n}} (gpen_video.device)
    host_syncs: dict[str, dict[str, int]] = field(default_factory=dict)
    device_seconds: dict[str, float] = field(default_factory=dict)  # CUDA-event time per stage
    device_busy: float | None = None  # share of the wall time the GPU ran any stage's work

    @property
    def syncs_per_frame(self) -> float:
        """Host syncs of the restore/composite path per written frame."""
        return syncs_per_frame(self.host_syncs, self.frames)

    @property
    def detect_syncs_per_frame(self) -> float:
        """Host syncs of detection per written frame (one per detection round)."""
        return syncs_per_frame(self.host_syncs, self.frames, detection=True)
    video: str = ""  # codec in → codec out, and why they differ (VideoSink.video_report)
    audio: str = ""  # what happened to the audio/subtitle tracks (VideoSink.tracks_report)

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
            + (f"  video: {self.video}; audio and subtitles: {self.audio}\n" if self.video else "")
            + f"  time per stage: {stages}"
            + (f"\n  host syncs per frame: {self.syncs_per_frame:.2f} (restore and compose), "
               f"{self.detect_syncs_per_frame:.2f} (detection)" if self.host_syncs else "")
            + (f", GPU busy {100 * self.device_busy:.0f} %" if self.device_busy is not None
               else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "frames": self.frames, "faces": self.faces,
                "tracks": self.tracks, "seconds": round(self.seconds, 3),
                "setup_seconds": round(self.setup_seconds, 3), "fps": round(self.fps, 3),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "restorer": self.restorer, "batches": self.batches,
                "host_syncs": self.host_syncs,
                "host_syncs_per_frame": round(self.syncs_per_frame, 3),
                "detect_syncs_per_frame": round(self.detect_syncs_per_frame, 3),
                "device_seconds": {k: round(v, 4) for k, v in self.device_seconds.items()},
                "device_busy": None if self.device_busy is None else round(self.device_busy, 4),
                "video": self.video, "audio": self.audio}


@dataclass
class PastedFace:
    """What :func:`gpen_video.pipeline.run`'s ``observer`` hears about each face it pasted."""

    track_id: int
    matrix: np.ndarray  # 2×3 frame → crop, for ``crop_size``
    crop_size: int
    alpha: float  # ramp × strength actually used
