"""Temporal quality and detail of a result video against its source (``gpen-video measure``).

``measure(source, result, options)`` → :class:`QualityReport` (per face track and for the whole
clip: warping-error ratio, face-core sharpness ratio, landmark-jitter ratio, mean change inside
and outside the faces); :func:`plot` draws its per-track curves. See
:mod:`gpen_video.quality.collect` for what each number is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpen_video.quality.collect import MeasureOptions, walk, walk_frames
from gpen_video.quality.report import QualityReport, Summary, build_report, plot

__all__ = ["MeasureOptions", "QualityReport", "Summary", "measure", "measure_frames", "plot"]


def measure(source: Path, result: Path, options: MeasureOptions = MeasureOptions(),
            detector: Any = None) -> QualityReport:
    """The quality report of ``result`` against ``source`` (``detector``: an already built
    :class:`~gpen_video.faces.FaceDetector` to reuse).

    Raises:
        UsageError: the videos differ in frame size or count.
        InputError: a video cannot be read.
    """
    return build_report(Path(source), Path(result), walk(Path(source), Path(result), options,
                                                          detector))


def measure_frames(source: list, result: list, faces: list, crop_size: int = 256,
                   names: tuple[str, str] = ("source", "result")) -> QualityReport:
    """The report of decoded ``result`` frames against ``source`` frames, with the faces already
    known (``faces[i]``: frame ``i``'s :class:`~gpen_video.faces.TrackedFace` list from a
    :class:`~gpen_video.faces.FaceStream` run on the source). No detector runs, so there is no
    landmark jitter. For benchmarks that measure many results of one source."""
    walker = walk_frames(source, result, faces, crop_size)
    return build_report(Path(names[0]), Path(names[1]), walker)
