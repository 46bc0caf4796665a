"""Chunk plans, segment formats and names: pure functions, no Ray, no encoding.

A farm render splits the output span ``first … last`` (0-based frame numbers, inclusive, in the
order frames are shown) into chunks of ``chunk`` frames. Each chunk is rendered by
``gpen-video IN SEG --frames A-B --overlap N`` (or a Ray worker doing the same), which decodes
from the keyframe before ``A − N``, warms the tracker and smoothers on the overlap, and writes
exactly frames ``A … B`` with the source's timestamps. :func:`gpen_video.farm.stitch.stitch`
joins the segments.

Segment formats (:func:`segment_format`), chosen from the job's delivery codec:

* ``copy`` — the delivery codec is intra-only (ProRes, DNxHR, FFV1, PNG): segments are written
  in it with identical settings and the stitch packet-copies them. The result is the file a
  single process would have written (intra frames do not depend on their neighbours).
* ``lossless`` — the delivery codec is long-GOP (H.264/HEVC): segments are FFV1 holding the
  pipeline's RGB output exactly (``bgr0``, ``gbrp16le`` for deeper sources) and the stitch
  encodes the delivery codec once, from the same pixels a single process would have encoded.
* ``gop`` — segments in the delivery codec itself, each a closed GOP starting with an IDR frame,
  all with identical settings; the stitch packet-copies them (no serial encode at the end, at the
  price of a keyframe at every chunk border).

``auto`` is ``copy`` for intra delivery codecs and ``lossless`` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path

from gpen_video.errors import UsageError
from gpen_video.media.codecs import SourceVideoInfo, choose_encoder, is_image_sequence
from gpen_video.options import EncodeOptions, RunOptions

SEGMENT_MODES = ("auto", "copy", "lossless", "gop")
INTRA_FAMILIES = frozenset({"prores", "dnxhr", "ffv1", "png", "tiff"})
LOSSLESS_SUFFIX = ".mkv"
# progress share of one stitched frame against one rendered frame (re-encode, packet copy)
STITCH_WEIGHT = {True: 0.25, False: 0.02}
SEGMENT_PREFIX = "seg-"


@dataclass(frozen=True)
class Chunk:
    """Frames ``start … end`` (inclusive) of the output, rendered as one segment."""

    index: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start + 1

    @property
    def frames(self) -> str:
        """``"A-B"``, as ``--frames`` takes it."""
        return f"{self.start}-{self.end}"

    def segment_name(self, suffix: str) -> str:
        """Deterministic file name: ``seg-000300-000599.mkv`` (sorts in frame order)."""
        return f"{SEGMENT_PREFIX}{self.start:06d}-{self.end:06d}{suffix}"


def plan_chunks(first: int, last: int, chunk: int) -> list[Chunk]:
    """Split frames ``first … last`` into chunks of ``chunk`` frames (the last may be shorter).

    Raises:
        UsageError: ``chunk < 1`` or ``last < first``.
    """
    if chunk < 1:
        raise UsageError(f"--chunk {chunk}: must be at least 1 frame")
    if first < 0 or last < first:
        raise UsageError(f"frames {first}-{last}: need 0 <= first <= last")
    return [Chunk(i, s, min(s + chunk - 1, last))
            for i, s in enumerate(range(first, last + 1, chunk))]


def lossless_encode(bit_depth: int) -> EncodeOptions:
    """FFV1 holding the pipeline's RGB images bit for bit (8-bit ``bgr0``, else ``gbrp16le``),
    without the source's audio (the stitch muxes it once), with a manifest
    (:mod:`gpen_video.farm.manifest`)."""
    return EncodeOptions(codec="ffv1", pix_fmt="bgr0" if bit_depth <= 8 else "gbrp16le",
                         tracks=False, manifest=True)


@dataclass(frozen=True)
class SegmentFormat:
    """How a farm job's chunks are encoded and joined."""

    mode: str  # copy | lossless | gop
    suffix: str  # segment file suffix
    encode: EncodeOptions  # for every segment
    reencode: bool  # the stitch encodes the delivery codec (else it packet-copies)


def segment_format(source: SourceVideoInfo, bit_depth: int, output: str | os.PathLike[str],
                   encode: EncodeOptions, mode: str = "auto") -> SegmentFormat:
    """The segment format of a job writing ``output`` with ``encode`` (see module docstring).

    Raises:
        UsageError: unknown mode, an image-sequence output, or what ``choose_encoder`` raises
            for the delivery codec.
    """
    if mode not in SEGMENT_MODES:
        raise UsageError(f"--segments {mode!r}: choose one of {', '.join(SEGMENT_MODES)}")
    output = Path(output)
    if is_image_sequence(output):
        raise UsageError("gpen-video farm writes a video file; for an image sequence render the "
                         "chunks directly (gpen-video IN out_%06d.png --frames A-B): each writes "
                         "its own numbered files and nothing needs stitching")
    delivery = choose_encoder(source, output, encode)
    family = _family(delivery.encoder)
    if mode == "auto":
        mode = "copy" if family in INTRA_FAMILIES else "lossless"
    if mode in ("copy", "gop"):
        if mode == "copy" and family not in INTRA_FAMILIES:
            raise UsageError(f"--segments copy needs an intra-only delivery codec (prores, dnxhr, "
                             f"ffv1, png), not {family}: use --segments gop or lossless")
        # no audio in segments: the stitch muxes the source's once (and Matroska would shift a
        # segment's timestamps to fit audio priming). QuickTime segments keep decode timestamps,
        # which Matroska drops for B-frames; FFV1 stays in the output's container (.mkv, .mp4).
        suffix = output.suffix.lower() if family == "ffv1" else ".mov"
        return SegmentFormat(mode, suffix, replace(encode, tracks=False, manifest=True),
                             reencode=False)
    return SegmentFormat("lossless", LOSSLESS_SUFFIX, lossless_encode(bit_depth), reencode=True)


def _family(encoder: str) -> str:
    from gpen_video.media.codecs import ENCODERS

    for family, name in ENCODERS.items():
        if name == encoder:
            return family
    return encoder


def job_key(run: RunOptions, chunk: int, fmt: SegmentFormat) -> str:
    """12 hex digits naming everything that changes a job's segments: the input file (path,
    size, modification time), every rendering option, the chunking and the segment format.
    Output path, overwrite and progress do not count, so a rerun finds its segments."""
    src = Path(run.input)
    try:
        st = src.stat()
        ident = [str(src.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        ident = [str(src)]
    settings = {k: _plain(v) for k, v in asdict(run).items()
                if k not in ("input", "output", "overwrite", "progress")}
    blob = json.dumps([ident, settings, chunk, _plain(fmt)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _plain(value: object) -> object:
    if is_dataclass(value):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def default_segment_dir(output: str | os.PathLike[str], key: str) -> Path:
    """``<output folder>/.<output name>.farm-<key>``: hidden, beside the output, one per job."""
    output = Path(output)
    return output.parent / f".{output.name}.farm-{key}"
