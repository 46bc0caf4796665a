"""Image sequences and stills as a source: the same contract as
:class:`~gpen_video.media.source.VideoSource`, so the stages never learn which they read.

What counts as a sequence (:func:`is_image_input`): a file-name pattern — ``shot.%04d.exr``,
``shot.####.exr``, ``shot.@.exr`` (the field's padding conventions, parsed by ``fileseq``) — a
folder holding one sequence, or one image file (a still: a sequence of one frame).

Conventions (beyond VideoSource's, which all hold):

* Frames are :class:`PlateFrame`: ``index`` is the 0-based position in the sequence
  (file number − first file number), ``number`` the file's own frame number (1001 …), ``pts`` =
  ``index`` in a ``1/fps`` time base, ``duration`` 1.
* Frame numbers are the sequence's own: a :class:`RangeOptions` ``start``/``end`` are **file
  numbers** (``--frames 1001-1100`` means ``shot.1001`` … ``shot.1100``).
* ``fps``: ``--fps``, else the first file's header (EXR ``framesPerSecond``), else 24; where it
  came from is in :attr:`fps_source`. Timecode: the EXR ``timeCode`` attribute, if any.
* Missing files inside the span are listed in one :class:`InputError`; with
  ``errors="conceal"`` each is replaced by the frame before it (``Frame.concealed``), with a
  warning, so numbering and frame count survive.
* ``image`` follows VideoSource (H×W×3 RGB, uint8 or full-scale uint16). Alpha is carried
  beside it (``PlateFrame.alpha``) and never processed; EXR frames carry the stored float plate
  (``PlateFrame.plate``, half or float, untouched) and ``image`` is its display encoding as
  uint16 (:mod:`gpen_video.media.scene_linear`).
* Memory: one file read at a time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from gpen_video.errors import InputError, UsageError
from gpen_video.media.codecs import SourceVideoInfo
from gpen_video.media.colour import RANGE_FULL, ColourTags
from gpen_video.media.orientation import Orientation
from gpen_video.media.source import Frame, ResolvedRange
from gpen_video.media.stills import STILL_SUFFIXES, Picture, read_picture
from gpen_video.options import RangeOptions

log = logging.getLogger("gpen_video.media")

DEFAULT_FPS = Fraction(24)
_PATTERN = re.compile(r"%0?\d*d|#+|@+")
_MISSING_LISTED = 20  # missing frame numbers named in an error (then "… and N more")


@dataclass(frozen=True, eq=False)
class PlateFrame(Frame):
    """A :class:`Frame` of an image sequence, with what the file held besides RGB."""

    number: int | None = None  # the file's frame number (None: a still)
    alpha: np.ndarray | None = None  # H×W, the file's type; written back unchanged
    plate: np.ndarray | None = None  # EXR: H×W×3 float16/float32 as stored
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # EXR channels besides RGBA
    header: dict[str, Any] = field(default_factory=dict)  # EXR header of this file
    parts: list = field(default_factory=list)  # multi-part EXR: every part (stills.Picture)
    part: int = 0  # which of them is restored


def has_pattern(path: str | os.PathLike[str]) -> bool:
    """True if the file name holds a frame-number pattern (``%04d``, ``####``, ``@``)."""
    return bool(_PATTERN.search(Path(path).name))


def is_image_input(path: str | os.PathLike[str]) -> bool:
    """True for inputs this module reads: a pattern, a folder, or one image file."""
    path = Path(path)
    if has_pattern(path) or path.is_dir():
        return True
    return path.suffix.lower() in STILL_SUFFIXES


def to_printf(pattern: str | os.PathLike[str]) -> str:
    """``shot.####.exr`` / ``shot.@@@@.exr`` / ``shot.%04d.exr`` → ``shot.%04d.exr``
    (one ``@`` or ``#`` alone: no padding)."""
    name = Path(pattern).name

    def printf(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("%"):
            return text
        width = len(text)
        return "%d" if width == 1 and text == "@" else f"%0{width}d"

    return str(Path(pattern).with_name(_PATTERN.sub(printf, name, count=1)))


def _fileseq() -> Any:
    try:
        import fileseq
    except ImportError:
        raise UsageError("image-sequence input needs fileseq: pip install 'gpen-video[plates]' "
                         "(or pip install fileseq)") from None
    return fileseq


@dataclass(frozen=True)
class SequenceFiles:
    """The files of a sequence: ``numbers`` present, in order; ``name_of(n)`` → path."""

    pattern: str  # printf-style path (``shot.%04d.exr``), or the still's path
    numbers: tuple[int, ...]  # frame numbers found, sorted (a still: (0,))
    still: bool = False

    def name_of(self, number: int) -> Path:
        return Path(self.pattern) if self.still else Path(self.pattern % number)

    @property
    def first(self) -> int:
        return self.numbers[0]

    @property
    def last(self) -> int:
        return self.numbers[-1]

    @property
    def missing(self) -> list[int]:
        present = set(self.numbers)
        return [n for n in range(self.first, self.last + 1) if n not in present]


def find_files(path: str | os.PathLike[str]) -> SequenceFiles:
    """The sequence (or still) that ``path`` names.

    Raises:
        InputError: nothing matches, a folder holds no or several sequences, an unknown image
            type.
    """
    path = Path(path)
    if path.is_dir():
        return _find_in_folder(path)
    if not has_pattern(path):
        if not path.exists():
            raise InputError(f"input {path} does not exist")
        return SequenceFiles(str(path), (0,), still=True)
    if path.suffix.lower() not in STILL_SUFFIXES:
        raise InputError(f"input {path.name}: image sequences of {path.suffix or 'no suffix'} "
                         f"files are not read; use {', '.join(sorted(STILL_SUFFIXES))}")
    if not path.parent.is_dir():
        raise InputError(f"input {path}: folder {path.parent} does not exist")
    fileseq = _fileseq()
    printf = to_printf(path)
    try:
        seq = fileseq.findSequenceOnDisk(str(path))
    except (fileseq.FileSeqException, ValueError):
        seq = None
    if seq is None or seq.frameSet() is None:
        raise InputError(f"input {path}: no files match this pattern in {path.parent} "
                         f"(looked for {Path(printf).name % 1001} and the like)")
    numbers = tuple(sorted(int(n) for n in seq.frameSet()))
    # keep only the files the exact padding names (fileseq's @ matches any width)
    numbers = tuple(n for n in numbers if Path(printf % n).is_file()) or numbers
    return SequenceFiles(printf if "%" in printf else str(path), numbers)


def _find_in_folder(folder: Path) -> SequenceFiles:
    fileseq = _fileseq()
    found = [s for s in fileseq.findSequencesOnDisk(str(folder))
             if s.extension().lower() in STILL_SUFFIXES and s.frameSet() is not None]
    if not found:
        raise InputError(f"input {folder} is a folder without an image sequence: give a video "
                         f"file, a pattern like shot.%04d.exr, or a folder of numbered "
                         f"{'/'.join(sorted(STILL_SUFFIXES))} frames")
    if len(found) > 1:
        names = ", ".join(str(s.format("{basename}{padding}{extension}")) for s in found[:6])
        raise InputError(f"input {folder} holds {len(found)} image sequences ({names}): name "
                         "one with a pattern, e.g. " + str(folder / "shot.####.exr"))
    seq = found[0]
    width = max(1, seq.zfill())
    pattern = os.path.join(seq.dirname(), f"{seq.basename()}%0{width}d{seq.extension()}")
    numbers = tuple(sorted(int(n) for n in seq.frameSet()))
    return SequenceFiles(pattern, numbers)


class ImageSequenceSource:
    """A sequence or still as a stream of :class:`PlateFrame` (module docstring).

    Raises (constructor):
        InputError: nothing to read, an unreadable first frame, missing frames (with
            ``errors="strict"``, or inside the requested range).
        UsageError: a range outside the sequence's numbers; EXR without OpenEXR/OpenColorIO.
    """

    def __init__(self, path: str | os.PathLike[str], range: RangeOptions | None = None, *,
                 errors: str = "strict", fps: Fraction | None = None,
                 colorspace: str | None = None) -> None:
        self.files = find_files(path)
        self.path = Path(self.files.pattern)
        self._errors = errors
        self.concealed_frames: list[int] = []
        first = read_picture(self.files.name_of(self.files.first))
        self._probe(first)
        self.encoding = None
        if first.is_float:
            from gpen_video.media.scene_linear import DisplayEncoding

            self.encoding = DisplayEncoding.create(colorspace, first.header)
        if fps is not None:
            self.fps, self.fps_source = Fraction(fps), "--fps"
        elif first.fps is not None:
            self.fps, self.fps_source = first.fps, "the files' headers"
        else:
            self.fps, self.fps_source = DEFAULT_FPS, "default (no rate in the files; --fps sets it)"
        self.time_base = 1 / self.fps
        self.timecode = _exr_timecode(first.header, self.fps) or first.header.get(
            "dpx_timecode")
        self.range: ResolvedRange | None = None
        if range is not None and (range.start is not None or range.end is not None
                                  or range.overlap or range.tail):
            self.range = self._resolve_range(range)
        self._check_missing()

    # ------------------------------------------------------------------ probing

    def _probe(self, first: Picture) -> None:
        h, w = first.rgb.shape[:2]
        self.width = self.coded_width = w
        self.height = self.coded_height = h
        self.codec_name = first.codec
        self.profile = None
        self.still = self.files.still
        self.has_alpha = first.alpha is not None
        self.is_float = first.is_float
        self.file_pix_fmt = first.pix_fmt
        self.bit_depth = 16 if first.is_float else first.bit_depth
        self._dtype = np.dtype(np.uint16 if first.is_float or first.rgb.dtype == np.uint16
                               else np.uint8)
        self.pix_fmt = "rgb48le" if self._dtype == np.uint16 else "rgb24"
        self.plate_dtype = first.rgb.dtype
        self.header = first.header
        self.extra_names = tuple(first.extra)  # EXR channels besides RGBA
        self.sample_aspect_ratio = None
        self.container_format = "image2"
        self.metadata: dict[str, str] = {}
        self.stream_metadata: dict[str, str] = {}
        self.other_streams: tuple[tuple[int, str, str], ...] = ()
        self.colour = ColourTags(range=RANGE_FULL, matrix=0)
        self.orientation = Orientation.from_matrix(None)
        self.mastering_display = None
        self.light_level = None
        self.declared_frames = len(range(self.files.first, self.files.last + 1))

    def _resolve_range(self, options: RangeOptions) -> ResolvedRange:
        if options.start_timecode or options.end_timecode:
            raise UsageError("image sequences take --frames/--start/--end as file frame "
                             "numbers, not timecodes")
        lo, hi = self.files.first, self.files.last
        start = lo if options.start is None else options.start
        end = hi if options.end is None else options.end
        if end < start or options.overlap < 0 or options.tail < 0:
            raise UsageError(f"frame range {start}-{end}: need start <= end")
        if start < lo or start > hi:
            raise UsageError(f"frame range starts at {start} but {self.path.name} holds frames "
                             f"{lo}-{hi} (give the files' own frame numbers)")
        clamped = end > hi
        if clamped:
            log.info("%s: range end %d is past the last frame %d; clamped", self.path.name,
                     end, hi)
            end = hi
        n = hi - lo + 1
        s, e = start - lo, end - lo
        return ResolvedRange(first=max(0, s - options.overlap), start=s, end=e,
                             clamped=clamped, pts=tuple(range(n)), durations=(1,) * n,
                             time_base=self.time_base, last=min(n - 1, e + options.tail))

    def _check_missing(self) -> None:
        missing = self.files.missing
        if self.range is not None:
            lo = self.files.first
            missing = [m for m in missing if self.range.first <= m - lo <= self.range.last]
        self.missing = missing
        if not missing:
            return
        listed = ", ".join(str(n) for n in missing[:_MISSING_LISTED])
        if len(missing) > _MISSING_LISTED:
            listed += f" … and {len(missing) - _MISSING_LISTED} more"
        if self._errors == "strict":
            raise InputError(f"input {self.path.name}: {len(missing)} frame(s) missing from "
                             f"{self.files.first}-{self.files.last}: {listed}; render them, or "
                             "use --on-damage conceal to repeat the frame before each")
        log.warning("%s: %d missing frame(s) concealed by repeating the frame before: %s",
                    self.path.name, len(missing), listed)

    # ------------------------------------------------------------------ the contract

    @property
    def frame_count(self) -> int:
        return self.declared_frames

    @property
    def output_frame_count(self) -> int:
        return self.range.count if self.range is not None else self.frame_count

    @property
    def image_dtype(self) -> np.dtype:
        return self._dtype

    @property
    def rgb_format(self) -> str:
        return self.pix_fmt

    @property
    def rotation(self) -> float:
        return 0.0

    @property
    def display_matrix(self) -> None:
        return None

    @property
    def default_duration(self) -> int:
        return 1

    @property
    def video_info(self) -> SourceVideoInfo:
        return SourceVideoInfo(codec=self.codec_name, profile=None, pix_fmt=self.file_pix_fmt
                               if not self.is_float else "rgb48le", bit_depth=self.bit_depth,
                               width=self.width, height=self.height)

    def number_of(self, index: int) -> int:
        """The file frame number of position ``index``."""
        return self.files.first + index

    def __repr__(self) -> str:
        return (f"ImageSequenceSource({str(self.path)!r}, {self.codec_name} "
                f"{self.file_pix_fmt} {self.width}x{self.height}, frames "
                f"{self.files.first}-{self.files.last} @ {float(self.fps):.3f} fps)")

    def __iter__(self) -> Iterator[PlateFrame]:
        return self.frames()

    def frames(self) -> Iterator[PlateFrame]:
        """Read and yield frames in number order (the range's, with overlap and tail).

        Raises:
            InputError: a file cannot be read or differs from the first in size or kind.
        """
        self.concealed_frames = []
        rng = self.range
        first, last = (rng.first, rng.last) if rng else (0, self.declared_frames - 1)
        present = set(self.files.numbers)
        previous: PlateFrame | None = None
        for index in range(first, last + 1):
            number = self.number_of(index)
            if number not in present:
                if previous is None:  # the range starts on a hole: the nearest earlier file
                    previous = self._read(self._earlier(number, present), index)
                self.concealed_frames.append(index)
                yield self._timed(previous, index, number, concealed=True)
                continue
            previous = self._read(number, index)
            yield previous

    def _earlier(self, number: int, present: set[int]) -> int:
        for n in range(number, self.files.first - 1, -1):
            if n in present:
                return n
        return self.files.first

    def _timed(self, frame: PlateFrame, index: int, number: int,
               concealed: bool = False) -> PlateFrame:
        from dataclasses import replace

        return replace(frame, index=index, pts=index, number=None if self.still else number,
                       in_range=self._in_range(index), concealed=concealed)

    def _in_range(self, index: int) -> bool:
        return self.range is None or self.range.start <= index <= self.range.end

    def _read(self, number: int, index: int) -> PlateFrame:
        path = self.files.name_of(number)
        picture = read_picture(path)
        self._check_like_first(path, picture)
        plate = None
        if picture.is_float:
            plate = picture.rgb
            image = self.encoding.proxy(plate)
        else:
            image = picture.rgb
        return PlateFrame(image=image, index=index, pts=index, time_base=self.time_base,
                          duration=1, in_range=self._in_range(index), key_frame=True,
                          number=None if self.still else number, alpha=picture.alpha,
                          plate=plate, extra=picture.extra, header=picture.header,
                          parts=picture.parts, part=picture.part)

    def _check_like_first(self, path: Path, picture: Picture) -> None:
        h, w = picture.rgb.shape[:2]
        if (w, h) != (self.width, self.height):
            raise InputError(f"{path.name} is {w}x{h} but the sequence's first frame is "
                             f"{self.width}x{self.height}: every frame must have one size")
        if picture.rgb.dtype != self.plate_dtype or (picture.alpha is not None) != \
                self.has_alpha:
            raise InputError(f"{path.name} is {picture.pix_fmt}"
                             f"{' with alpha' if picture.alpha is not None else ''}, unlike "
                             f"the sequence's first frame ({self.file_pix_fmt}"
                             f"{' with alpha' if self.has_alpha else ''})")

    def close(self) -> None:
        """Nothing stays open between files."""

    def __enter__(self) -> ImageSequenceSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _exr_timecode(header: dict[str, Any], fps: Fraction) -> str | None:
    """``HH:MM:SS:FF`` of an EXR ``timeCode`` attribute, or None."""
    tc = header.get("timeCode")
    if tc is None:
        return None
    try:
        h, m, s, f = tc.hours, tc.minutes, tc.seconds, tc.frame
        sep = ";" if getattr(tc, "dropFrame", False) else ":"
        return f"{h:02d}:{m:02d}:{s:02d}{sep}{f:02d}"
    except AttributeError:
        return None
