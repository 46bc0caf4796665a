"""Render farms: frame-range chunks, frame-exact stitching, Ray distribution, farm-manager
progress.

Three ways to render a clip in pieces, all through the same pipeline:

* **A farm manager** (OpenCue, Deadline, Deadline Cloud/OpenJD — templates in ``scripts/``) runs
  ``gpen-video IN SEGDIR/seg-A-B.mkv --frames A-B --overlap auto --segment`` per chunk and one
  ``gpen-video stitch SEGDIR --audio-from IN OUT --reencode`` at the end. An end past the
  clip is clamped, so the last chunk may be planned long.
* **Ray**: ``gpen-video farm IN OUT --chunk 300`` plans the chunks, renders them on Ray actors
  (one per GPU, engine loaded once; CPU workers without GPUs), retries failures, resumes from the
  segments already on disk, and stitches (:func:`run_farm`, needs the ``farm`` extra).
* **A library caller**: :func:`plan_chunks`, ``pipeline.run`` with a ``RangeOptions`` per chunk,
  then :func:`stitch`.

Public API: :class:`Chunk`, :func:`plan_chunks`, :class:`SegmentFormat`,
:func:`segment_format`, :func:`lossless_encode`, :func:`segment_options`, :func:`stitch`,
:class:`StitchResult`, :func:`run_farm`, :class:`FarmReport`.
Progress lines for farm managers: :mod:`gpen_video.progress`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpen_video.errors import UsageError
from gpen_video.farm.plan import (Chunk, SegmentFormat, lossless_encode, plan_chunks,
                                  segment_format)
from gpen_video.farm.stitch import StitchResult, stitch
from gpen_video.options import EncodeOptions, RunOptions

if TYPE_CHECKING:
    from gpen_video.farm.ray_runner import FarmReport

__all__ = ["Chunk", "FarmReport", "SegmentFormat",
           "StitchResult", "lossless_encode", "plan_chunks", "run_farm", "segment_format",
           "segment_options", "stitch"]


def segment_options(options: RunOptions) -> RunOptions:
    """``options`` for a farm chunk (``gpen-video … --segment``): lossless FFV1 of the pipeline's
    RGB output, no audio (the stitch muxes the source's once), into a ``.mkv``.

    Raises:
        UsageError: codec options were given too, or the output is not ``.mkv``.
        InputError: the input cannot be read.
    """
    from gpen_video.media import VideoSource

    if options.encode != EncodeOptions():
        raise UsageError("--segment chooses the encoding itself (lossless FFV1): drop --codec, "
                         "--crf, --preset and --pix-fmt, and give them to `gpen-video stitch` "
                         "instead")
    if Path(options.output).suffix.lower() != ".mkv":
        raise UsageError(f"--segment writes Matroska: name the segment .mkv, not "
                         f"{Path(options.output).name}")
    with VideoSource(options.input) as source:
        depth = source.bit_depth
    return replace(options, encode=lossless_encode(depth))


def run_farm(*args: Any, **kwargs: Any) -> "FarmReport":
    """Render a job on Ray; see :func:`gpen_video.farm.ray_runner.run_farm`."""
    from gpen_video.farm.ray_runner import run_farm as _run_farm

    return _run_farm(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "FarmReport":
        from gpen_video.farm.ray_runner import FarmReport

        return FarmReport
    raise AttributeError(name)
