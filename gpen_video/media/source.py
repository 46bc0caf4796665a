"""Streaming video decode with PyAV: upright RGB frames with their exact timing.

Conventions (every consumer relies on them):

* ``Frame.image`` is H×W×3 **RGB**, C-contiguous, **upright** (the display matrix applied, so a
  phone clip shot in portrait is portrait here). ``uint8`` for 8-bit sources, ``uint16`` using
  the full 0–65535 scale for deeper sources (10-bit 1023 → 65535).
* YUV → RGB uses the source's matrix and range (see :mod:`gpen_video.media.colour`); the sink
  converts back with the same ones.
* ``Frame.index`` is the frame's 0-based number in presentation order over the whole clip
  (the order a player shows frames; frames the container marks as discarded by an edit list do
  not count). ``pts``/``duration`` are in ``time_base`` units, exactly as in the source.
* With a :class:`RangeOptions`, decoding starts at the keyframe before ``start - overlap`` and
  frames from ``start - overlap`` on, up to ``end + tail``, are yielded; ``Frame.in_range`` tells
  which of them belong to the output. ``end`` past the clip is clamped to the last frame.
* Memory is bounded: one decoder, one frame converted at a time; nothing goes to disk.
* Damaged packets are concealed, not dropped: a frame the decoder cannot produce is replaced by
  a repeat of the previous one with its own timestamp (``Frame.concealed``), with a warning, so
  frame count and timing survive (``errors="strict"`` raises :class:`InputError` instead).
"""

from __future__ import annotations

import bisect
import heapq
import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.error
import numpy as np

from gpen_video.errors import InputError, UsageError
from gpen_video.media.codecs import SourceVideoInfo, pix_fmt_layout
from gpen_video.media.colour import ColourTags, is_rgb_format
from gpen_video.media.orientation import Orientation, parse_display_matrix
from gpen_video.media.timecode import frame_number
from gpen_video.options import RangeOptions

log = logging.getLogger("gpen_video.media")

ErrorPolicy = Literal["conceal", "strict"]
_ONE_PACKET_PER_FRAME = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "mxf"}
_PROBE_PACKETS = 400  # packets read at most to find the first decodable frame
_DAMAGE_WARNINGS = 5  # damage warnings logged one by one before a single final summary


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame, upright RGB, with the source's timing.

    ``pts`` and ``duration`` are integers in ``time_base`` units (the source stream's).
    ``in_range`` is False for overlap frames decoded before the requested range (they warm
    temporal stages and must not be written). ``concealed`` marks a frame rebuilt because the
    source was damaged there.
    """

    image: np.ndarray  # H×W×3 RGB, uint8 or uint16 (full scale), C-contiguous, upright
    index: int  # 0-based presentation-order number in the whole clip
    pts: int
    time_base: Fraction
    duration: int  # in time_base units (> 0)
    in_range: bool = True
    key_frame: bool = False
    concealed: bool = False

    @property
    def time(self) -> Fraction:
        """Presentation time in seconds (exact)."""
        return self.pts * self.time_base

    @property
    def end_time(self) -> Fraction:
        """End of this frame's display interval in seconds (exact)."""
        return (self.pts + self.duration) * self.time_base

    def with_image(self, image: np.ndarray) -> Frame:
        """The same frame (timing, index, flags) carrying another image."""
        return replace(self, image=image)


@dataclass(frozen=True)
class ResolvedRange:
    """A frame range checked against the clip: ``first`` ≤ ``start`` ≤ ``end`` (inclusive).

    ``pts``/``durations`` list the presentation timestamps and durations of frames
    ``0 … len(pts) - 1`` (at least up to ``end``), found by reading packets, not decoding.
    """

    first: int  # first frame decoded and yielded (start - overlap, clamped at 0)
    start: int
    end: int
    clamped: bool  # the requested end was past the clip
    pts: tuple[int, ...]
    durations: tuple[int, ...]
    time_base: Fraction
    last: int = -1  # last frame decoded and yielded (end + tail, clamped; -1: end)

    def __post_init__(self) -> None:
        if self.last < self.end:
            object.__setattr__(self, "last", self.end)

    @property
    def count(self) -> int:
        """Frames in the output range."""
        return self.end - self.start + 1

    @property
    def start_time(self) -> Fraction:
        """Presentation time (s) of frame ``start``."""
        return self.pts[self.start] * self.time_base

    @property
    def end_time(self) -> Fraction:
        """End (s) of frame ``end``'s display interval."""
        return (self.pts[self.end] + self.durations[self.end]) * self.time_base


def _open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every failure into one clear :class:`InputError`."""
    try:
        return av.open(str(path), "r", metadata_errors="replace")
    except FileNotFoundError:
        raise InputError(f"input {path} does not exist") from None
    except PermissionError:
        raise InputError(f"input {path} cannot be read (permission denied)") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"input {path}: {_describe_unreadable(path, exc)}") from None


def _describe_unreadable(path: Path, exc: Exception) -> str:
    """Why FFmpeg could not open a file, as precisely as a quick look allows."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        head = b""
    if head[4:8] in (b"ftyp", b"mdat", b"moov", b"free", b"wide", b"skip"):
        if not _mp4_has_box(path, b"moov"):
            return ("is an MP4/MOV whose index ('moov') is missing: the file is truncated or "
                    "was not finished; re-export or re-copy it")
        return "is an MP4/MOV that FFmpeg cannot parse (damaged); re-export or re-copy it"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "is a text file, not a video"
    reason = getattr(exc, "strerror", None) or str(exc)
    return f"is not a video FFmpeg can read ({reason}); check the file"


def _mp4_has_box(path: Path, box: bytes) -> bool:
    """True if the top level of an ISO-BMFF file holds ``box`` (reads box headers only)."""
    size_total = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size_total:
            fh.seek(offset)
            header = fh.read(16)
            size = int.from_bytes(header[0:4], "big")
            kind = header[4:8]
            if kind == box:
                return True
            if size == 1 and len(header) >= 16:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                return False
            if size < 8:
                return False
            offset += size
    return False


def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a folder, not a video file")
    if not path.is_file():  # a FIFO, socket or device: no size, no second read
        kind = "a named pipe (FIFO)" if path.is_fifo() else "not a regular file"
        raise InputError(f"input {path} is {kind}: gpen-video reads its input more than once "
                         "(to index frames, then to decode, and again for the audio); save the "
                         "stream to a file first and give that")
    if path.stat().st_size == 0:
        raise InputError(f"input {path} is empty (0 bytes)")


def _parse_mastering_display(data: bytes
                             ) -> tuple[tuple[float, ...], tuple[float, float]] | None:
    """``AVMasteringDisplayMetadata`` (22 int32: 10 rationals, 2 flags) → (R, G, B, white
    chromaticities as 8 floats, (min, max) luminance in cd/m²), or None without primaries."""
    if len(data) < 88:
        return None
    v = struct.unpack("<22i", data[:88])
    if not v[20] or not v[21]:
        return None
    ratio = [v[i] / v[i + 1] if v[i + 1] else 0.0 for i in range(0, 20, 2)]
    return tuple(ratio[:8]), (ratio[8], ratio[9])


def _bit_depth(frame: av.VideoFrame) -> int:
    try:
        return max(int(c.bits) for c in frame.format.components)
    except (AttributeError, ValueError):
        return pix_fmt_layout(frame.format.name)[1]


def frame_side_data(frame: av.VideoFrame, path: Path) -> list:
    """The frame's side data, or none when it holds a kind this PyAV cannot name (PyAV 18.1
    raises ``ValueError: 31 is not a valid Type`` for FFmpeg 8's EXIF side data of TIFF and
    JPEG files): such a file is read as coded, without display matrix or HDR metadata."""
    try:
        return list(frame.side_data)
    except ValueError as exc:
        log.debug("%s: frame side data not read (%s)", path.name, exc)
        return []


def _seconds(value: int | None, time_base: Fraction) -> float | None:
    return None if value is None else float(value * time_base)


class VideoSource:
    """A video file as a stream of upright RGB :class:`Frame` objects (see module docstring).

    Usage::

        with VideoSource("in.mp4", RangeOptions(start=30, end=39, overlap=8)) as source:
            for frame in source:      # frames 22..39; 30..39 have in_range=True
                ...

    Opening reads the container header and decodes one frame (to learn the pixel format,
    colour tags and display matrix); with a range it also reads packets (no decoding) up to
    the range's end to number the frames. Each iteration decodes afresh.

    Raises (constructor):
        InputError: the file is missing, empty, not a video, has no video stream, cannot be
            decoded, or is truncated.
        UsageError: the range starts past the clip's last frame, or needs timestamps the
            file does not have.
    """

    def __init__(self, path: str | os.PathLike[str], range: RangeOptions | None = None, *,
                 threads: int = 0, errors: ErrorPolicy = "conceal",
                 inspect: Callable[[int, av.VideoFrame], None] | None = None) -> None:
        self.path = Path(path)
        # called with (frame index, decoded av.VideoFrame) before each frame is converted: the
        # farm's stitch checks a segment's pictures against their checksums with it
        self._inspect = inspect
        if errors not in ("conceal", "strict"):
            raise ValueError(f"errors must be 'conceal' or 'strict', not {errors!r}")
        self._threads = threads
        self._errors: ErrorPolicy = errors
        self._open: set[av.container.InputContainer] = set()
        self.concealed_frames: list[int] = []  # indices of frames repaired during iteration
        self._damage_warnings = 0
        _check_input_file(self.path)
        self._probe()
        self.range: ResolvedRange | None = None
        if range is not None and (range.start is not None or range.end is not None
                                  or range.overlap or range.start_timecode
                                  or range.end_timecode):
            self.range = self._resolve_range(range)

    # ------------------------------------------------------------------ probing

    def _probe(self) -> None:
        container = _open_input(self.path)
        try:
            videos = [s for s in container.streams.video
                      if not (int(s.disposition) & int(av.stream.Disposition.attached_pic))]
            if not videos:
                covers = [s for s in container.streams.video if s not in videos]
                kinds = sorted({s.type for s in container.streams if s not in covers})
                if covers:
                    kinds.append("a cover picture")
                raise InputError(f"input {self.path} has no video stream (only "
                                 f"{' and '.join(kinds) or 'no streams at all'}): gpen-video "
                                 "needs a video")
            stream = videos[0]
            cc = stream.codec_context
            self.stream_index: int = stream.index
            self.codec_name: str = cc.name
            self.profile: str | None = stream.profile
            self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps: Fraction = Fraction(rate) if rate else Fraction(25)
            self.coded_width: int = cc.width
            self.coded_height: int = cc.height
            sar = stream.sample_aspect_ratio
            self.sample_aspect_ratio: Fraction | None = Fraction(sar) if sar else None
            self.container_format: str = container.format.name
            # Containers that store exactly one packet per frame: a packet that yields no
            # frame is a lost frame (concealed). Elsewhere (MPEG-TS fields, AVI packed B-frames)
            # only packets that raised a decode error are.
            self._one_packet_per_frame: bool = container.format.name in _ONE_PACKET_PER_FRAME
            self.metadata: dict[str, str] = dict(container.metadata)
            self.stream_metadata: dict[str, str] = dict(stream.metadata)
            self.declared_frames: int = int(stream.frames or 0)
            self.start_pts: int | None = stream.start_time
            self.duration_pts: int | None = stream.duration
            self.timecode: str | None = self._find_timecode(container, stream)
            self.other_streams: tuple[tuple[int, str, str], ...] = tuple(
                (s.index, s.type, s.codec_context.name if s.codec_context else "")
                for s in container.streams if s.index != stream.index)
            first = self._first_frame(container, stream)
            self.pix_fmt: str = first.format.name
            self.bit_depth: int = _bit_depth(first)
            self.colour = ColourTags(
                range=int(first.color_range or cc.color_range or 0),
                primaries=int(first.color_primaries or cc.color_primaries or 2),
                transfer=int(first.color_trc or cc.color_trc or 2),
                matrix=int(first.colorspace if first.colorspace is not None else 2),
            )
            matrix = None
            self.mastering_display: tuple[tuple[float, ...], tuple[float, float]] | None = None
            self.light_level: tuple[int, int] | None = None
            kinds = av.sidedata.sidedata.Type
            side_data = frame_side_data(first, self.path)
            for side in side_data:
                if side.type == kinds.DISPLAYMATRIX:
                    matrix = parse_display_matrix(bytes(side))
                elif side.type == kinds.MASTERING_DISPLAY_METADATA:
                    self.mastering_display = _parse_mastering_display(bytes(side))
                elif side.type == kinds.CONTENT_LIGHT_LEVEL and len(bytes(side)) >= 8:
                    cll = struct.unpack("<2I", bytes(side)[:8])
                    self.light_level = (int(cll[0]), int(cll[1]))
            self.orientation = Orientation.from_matrix(matrix)
            if not self.orientation.applied:
                log.warning("%s: display rotation %.1f° is not a multiple of 90°; frames are "
                            "processed as coded (not upright)", self.path.name,
                            self.orientation.rotation)
            self.width, self.height = self.orientation.upright_size(first.width, first.height)
            self.coded_width, self.coded_height = first.width, first.height
            self.side_data_types: tuple[str, ...] = tuple(str(s.type) for s in side_data)
        finally:
            container.close()

    @staticmethod
    def _find_timecode(container: av.container.InputContainer, stream: av.stream.Stream
                       ) -> str | None:
        # Matroska writes its tags in capitals (TIMECODE)
        for tags in (stream.metadata, *(o.metadata for o in container.streams),
                     container.metadata):
            value = tags.get("timecode") or tags.get("TIMECODE")
            if value:
                return value
        return None

    def _first_frame(self, container: av.container.InputContainer,
                     stream: av.stream.Stream) -> av.VideoFrame:
        stream.codec_context.thread_type = "AUTO"
        errors = 0
        last_error = ""
        try:
            for count, packet in enumerate(container.demux(stream)):
                if count > _PROBE_PACKETS:
                    break
                try:
                    frames = stream.decode(packet)
                except av.error.EOFError:
                    break
                except av.error.FFmpegError as exc:
                    errors += 1
                    last_error = getattr(exc, "strerror", None) or str(exc)
                    continue
                if frames:
                    return frames[0]
        except av.error.FFmpegError as exc:
            raise InputError(f"input {self.path}: cannot read the video stream "
                             f"({getattr(exc, 'strerror', None) or exc}); the file is "
                             "damaged") from None
        detail = f" ({errors} packet(s) failed: {last_error})" if errors else ""
        raise InputError(f"input {self.path}: no video frame could be decoded{detail}; the "
                         "file is damaged or truncated")

    # ------------------------------------------------------------------ properties

    @property
    def frame_count(self) -> int:
        """Frames in the clip: exact when a range scan reached the end, else the container's
        count, else an estimate from duration × fps."""
        if self.range is not None and self.range.clamped:
            return len(self.range.pts)
        if self.declared_frames:
            return self.declared_frames
        if self.duration_pts:
            return int(round(self.duration_pts * self.time_base * self.fps))
        return 0

    @property
    def output_frame_count(self) -> int:
        """Frames the sink will write (the range, or the whole clip's estimate)."""
        return self.range.count if self.range is not None else self.frame_count

    @property
    def rotation(self) -> float:
        """Display rotation, counter-clockwise degrees (PyAV ``VideoFrame.rotation``)."""
        return self.orientation.rotation

    @property
    def display_matrix(self) -> tuple[int, ...] | None:
        """The source's display matrix (9 int32), written back unchanged by the sink."""
        return self.orientation.matrix

    @property
    def image_dtype(self) -> np.dtype:
        """dtype of ``Frame.image``: uint8 for 8-bit sources, uint16 for deeper ones."""
        return np.dtype(np.uint16 if self.bit_depth > 8 else np.uint8)

    @property
    def rgb_format(self) -> str:
        """PyAV pixel format of ``Frame.image``: ``rgb24`` or ``rgb48le``."""
        return "rgb48le" if self.bit_depth > 8 else "rgb24"

    @property
    def video_info(self) -> SourceVideoInfo:
        """What :func:`gpen_video.media.codecs.choose_encoder` needs."""
        return SourceVideoInfo(codec=self.codec_name, profile=self.profile,
                               pix_fmt=self.pix_fmt, bit_depth=self.bit_depth,
                               width=self.coded_width, height=self.coded_height,
                               mastering_display=self.mastering_display,
                               light_level=self.light_level)

    @property
    def default_duration(self) -> int:
        """One frame at ``fps`` in ``time_base`` units (used when a frame has no duration)."""
        return max(1, int(round(1 / (self.fps * self.time_base))))

    def __repr__(self) -> str:
        return (f"VideoSource({str(self.path)!r}, {self.codec_name} {self.pix_fmt} "
                f"{self.width}x{self.height} @ {float(self.fps):.3f} fps, "
                f"~{self.frame_count} frames)")

    # ------------------------------------------------------------------ range

    def _resolve_range(self, options: RangeOptions) -> ResolvedRange:
        options = self._frames_from_timecodes(options)
        start = options.start or 0
        if start < 0 or (options.end is not None and options.end < start) or options.overlap < 0:
            raise UsageError(f"frame range {options.start}-{options.end} (overlap "
                             f"{options.overlap}): need 0 <= start <= end and overlap >= 0")
        if options.tail < 0:
            raise UsageError(f"frame range tail {options.tail}: need tail >= 0")
        need = None if options.end is None else options.end + options.tail
        pts, durations, complete = self._scan(need)
        if not pts:
            raise InputError(f"input {self.path}: the video stream has no packets")
        last = len(pts) - 1
        end = last if options.end is None else options.end
        clamped = end > last
        if clamped:
            log.info("%s: range end %d is past the last frame %d; clamped", self.path.name,
                     end, last)
            end = last
        if start > last:
            raise UsageError(f"frame range starts at {start} but {self.path.name} has "
                             f"{last + 1} frames (0-{last})")
        first = max(0, start - options.overlap)
        return ResolvedRange(first=first, start=start, end=end, clamped=complete and clamped,
                             pts=tuple(pts), durations=tuple(durations),
                             time_base=self.time_base, last=min(last, end + options.tail))

    def _frames_from_timecodes(self, options: RangeOptions) -> RangeOptions:
        """Turn ``start_timecode``/``end_timecode`` into frame numbers of this clip (counted
        from its own start timecode, or from 00:00:00:00 when it has none)."""
        changes: dict[str, int] = {}
        for name in ("start", "end"):
            tc = getattr(options, f"{name}_timecode")
            if tc is None:
                continue
            if getattr(options, name) is not None:
                raise UsageError(f"give the range {name} as a frame number or a timecode, "
                                 "not both")
            changes[name] = frame_number(tc, self.fps, origin=self.timecode)
        return replace(options, **changes) if changes else options

    def _scan(self, need_index: int | None) -> tuple[list[int], list[int], bool]:
        """Presentation timestamps (sorted) and durations of frames 0…, from packets only.

        Stops once frames ``0 … need_index + 1`` are final (no later packet can present earlier);
        reads to the end when ``need_index`` is None. Returns (pts, durations, reached_end).
        """
        container = _open_input(self.path)
        try:
            stream = container.streams[self.stream_index]
            for other in container.streams:
                if other.index != self.stream_index:
                    other.discard = av.stream.Discard.all
            pts_list: list[int] = []
            duration_of: dict[int, int] = {}
            packets = 0
            try:
                for packet in container.demux(stream):
                    if packet.size == 0 and packet.dts is None:
                        continue  # the end-of-stream marker PyAV yields for flushing
                    packets += 1
                    if packet.pts is None:
                        raise UsageError(f"input {self.path} has no timestamps, so frame "
                                         "ranges cannot be found: remux it into .mkv or .mp4")
                    if packet.is_discard:
                        continue
                    bisect.insort(pts_list, packet.pts)
                    duration_of[packet.pts] = int(packet.duration or 0)
                    # frames 0..need+1 are final once the next packet's dts is past them
                    # (later packets present no earlier than they decode); need+1 gives
                    # frame `need` its duration
                    if (need_index is not None and len(pts_list) > need_index + 1
                            and packet.dts is not None and pts_list[need_index + 1] < packet.dts):
                        return pts_list, self._fill_durations(pts_list, duration_of), False
            except av.error.FFmpegError as exc:
                raise InputError(f"input {self.path}: read error while indexing frames "
                                 f"({getattr(exc, 'strerror', None) or exc})") from None
            if self.declared_frames and packets < self.declared_frames:
                raise InputError(f"input {self.path} is truncated: its index lists "
                                 f"{self.declared_frames} video frames but only {packets} "
                                 "are in the file; re-export or re-copy it")
            return pts_list, self._fill_durations(pts_list, duration_of), True
        finally:
            container.close()

    def _fill_durations(self, pts: list[int], duration_of: dict[int, int]) -> list[int]:
        """Display durations: the gap to the next frame's pts (presentation order); the last
        frame runs to the stream's end, else keeps its packet's duration."""
        out = [b - a for a, b in zip(pts, pts[1:])]
        if pts:
            out.append(self._last_duration(pts[-1], duration_of.get(pts[-1], 0)))
        return out

    def _last_duration(self, pts: int, packet_duration: int) -> int:
        """Duration of the clip's last frame: to the stream's end when the container says
        where that is (and it is plausible), else the packet's, else one frame at ``fps``."""
        fallback = packet_duration if packet_duration > 0 else self.default_duration
        if self.start_pts is not None and self.duration_pts:
            to_end = self.start_pts + self.duration_pts - pts
            if 0 < to_end <= 4 * fallback:
                return to_end
        return fallback

    # ------------------------------------------------------------------ decoding

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self) -> Iterator[Frame]:
        """Decode and yield frames (the range's, with overlap, when a range is set).

        Raises:
            InputError: the file cannot be read on, is truncated, or (``errors="strict"``)
                holds a damaged packet.
        """
        self.concealed_frames = []
        self._damage_warnings = 0
        yield from self._with_durations(self._frames_raw())
        if self._damage_warnings > _DAMAGE_WARNINGS:
            log.warning("%s: %d damaged frames were concealed (frames %d to %d); the rest of "
                        "the clip is intact", self.path.name, len(self.concealed_frames),
                        min(self.concealed_frames, default=-1),
                        max(self.concealed_frames, default=-1))

    def _with_durations(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        """Set each frame's duration to the gap to the next frame's pts (its display time,
        which with B-frames is not its packet's duration); one frame of look-ahead."""
        held: Frame | None = None
        for frame in frames:
            if held is not None:
                gap = frame.pts - held.pts
                yield replace(held, duration=gap) if gap > 0 else held
            held = frame
        if held is not None:
            rng = self.range
            if rng is not None and held.index < len(rng.durations) and \
                    rng.pts[held.index] == held.pts:
                yield replace(held, duration=rng.durations[held.index])
            else:
                yield replace(held, duration=self._last_duration(held.pts, held.duration))

    def _frames_raw(self) -> Iterator[Frame]:
        rng = self.range
        if rng is None or rng.first == 0:
            yield from self._decode_from(None, rng)
            return
        # Seek to the keyframe before frame `first`; if the demuxer lands after it (it seeks
        # by decode timestamps, which can be later than the presentation one), step back.
        for back in (0, 16, 64, 256, 1024, None):
            target = None if back is None else rng.pts[max(0, rng.first - back)]
            attempt = self._decode_from(target, rng)
            try:
                head = next(attempt, None)
                if head is None:
                    return
                if target is not None and head.index > rng.first:
                    continue  # landed too late: retry from further back
                yield head
                yield from attempt
                return
            finally:
                attempt.close()

    def _decode_from(self, seek_pts: int | None, rng: ResolvedRange | None) -> Iterator[Frame]:
        container = _open_input(self.path)
        self._open.add(container)
        try:
            stream = container.streams[self.stream_index]
            cc = stream.codec_context
            cc.thread_type = "AUTO"
            cc.thread_count = self._threads
            for other in container.streams:
                if other.index != self.stream_index:
                    other.discard = av.stream.Discard.all
            if seek_pts is not None:
                container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
            yield from self._frames_of(container, stream, rng, counting=seek_pts is None)
        finally:
            self._open.discard(container)
            container.close()

    def _frames_of(self, container: av.container.InputContainer, stream: av.stream.Stream,
                   rng: ResolvedRange | None, counting: bool) -> Iterator[Frame]:
        """The decode loop: packets → frames → (concealment) → Frame objects."""
        first = rng.first if rng else 0
        last = rng.last if rng else None
        index_of = {p: i for i, p in enumerate(rng.pts)} if rng else None
        expected: list[tuple[int, int]] = []  # heap of (pts, duration) of packets sent
        error_budget = 0  # decode errors not yet matched to a missing frame
        packets = 0
        state = _EmitState(index=-1)
        try:
            demuxer = container.demux(stream)
            while True:
                try:
                    packet = next(demuxer)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    raise InputError(f"input {self.path}: read error after frame "
                                     f"{max(state.index, 0)} ({getattr(exc, 'strerror', None) or exc}); "
                                     "the file is damaged") from None
                flush = packet.size == 0 and packet.dts is None
                if not flush:
                    packets += 1
                    if packet.pts is not None and not packet.is_discard:
                        heapq.heappush(expected, (packet.pts, int(packet.duration or 0)))
                try:
                    decoded = stream.decode(None if flush else packet)
                except av.error.EOFError:
                    decoded = []
                except av.error.FFmpegError as exc:
                    error_budget += 1
                    reason = getattr(exc, "strerror", None) or str(exc)
                    at = _seconds(packet.pts, self.time_base)
                    if self._errors == "strict":
                        raise InputError(f"input {self.path}: damaged video packet near "
                                         f"{at if at is not None else '?'} s ({reason})") from None
                    self._warn_damage("%s: damaged video packet near %s s (%s); concealing",
                                      self.path.name, f"{at:.3f}" if at is not None else "?",
                                      reason)
                    continue
                for av_frame in decoded:
                    pts = av_frame.pts
                    if pts is None:
                        pts = state.next_pts if state.next_pts is not None else 0
                    lost = []
                    while expected and expected[0][0] < pts:
                        lost.append(heapq.heappop(expected))
                    packet_duration = 0
                    if expected and expected[0][0] == pts:
                        packet_duration = heapq.heappop(expected)[1]
                    if lost and (error_budget or self._one_packet_per_frame):
                        take = lost if self._one_packet_per_frame else lost[-error_budget:]
                        error_budget = max(0, error_budget - len(take))
                        for lost_pts, lost_duration in take:
                            yield from self._emit_lost(state, lost_pts, lost_duration, index_of,
                                                       first, last, av_frame)
                    duration = int(av_frame.duration or 0) or packet_duration
                    yield from self._emit(state, av_frame, pts, duration, index_of, first, last)
                    if last is not None and state.index >= last:
                        return
            if expected and (error_budget or self._one_packet_per_frame):
                leftover = sorted(expected)
                if not self._one_packet_per_frame:
                    leftover = leftover[:error_budget]
                for lost_pts, lost_duration in leftover:
                    yield from self._emit_lost(state, lost_pts, lost_duration, index_of, first,
                                               last, None)
            if (counting and rng is None and self.declared_frames
                    and packets < self.declared_frames):
                raise InputError(f"input {self.path} is truncated: its index lists "
                                 f"{self.declared_frames} video frames but only {packets} "
                                 "are in the file; re-export or re-copy it")
        finally:
            try:
                stream.codec_context.flush_buffers()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass

    def _warn_damage(self, message: str, *args: object) -> None:
        """Log damage once per occurrence for the first few, then only a final summary."""
        self._damage_warnings += 1
        if self._damage_warnings <= _DAMAGE_WARNINGS:
            log.warning(message, *args)
        if self._damage_warnings == _DAMAGE_WARNINGS:
            log.warning("%s: more damage follows; only a summary will be given at the end",
                        self.path.name)

    def _index_for(self, state: _EmitState, pts: int, index_of: dict[int, int] | None) -> int:
        if index_of is not None and pts in index_of:
            return index_of[pts]
        return state.index + 1

    def _advance(self, state: _EmitState, pts: int, duration: int,
                 index_of: dict[int, int] | None) -> tuple[int, int]:
        """Number the frame at ``pts`` (decoded or lost), fill in its duration, move ``state``."""
        index = self._index_for(state, pts, index_of)
        if duration <= 0:
            duration = self._duration_for(index, index_of)
        state.index = index
        state.next_pts = pts + duration
        return index, duration

    def _emit(self, state: _EmitState, av_frame: av.VideoFrame, pts: int, duration: int,
              index_of: dict[int, int] | None, first: int, last: int | None) -> Iterator[Frame]:
        index, duration = self._advance(state, pts, duration, index_of)
        if index < first or (last is not None and index > last):
            state.last_image = None
            return
        corrupt = bool(av_frame.is_corrupt)
        if corrupt:
            if self._errors == "strict":
                raise InputError(f"input {self.path}: frame {index} "
                                 f"({float(pts * self.time_base):.3f} s) is damaged")
            self._warn_damage("%s: frame %d (%.3f s) is damaged in the source; FFmpeg "
                              "concealed the errors", self.path.name, index,
                              float(pts * self.time_base))
            self.concealed_frames.append(index)
        if self._inspect is not None:
            self._inspect(index, av_frame)
        image = self.to_rgb(av_frame)
        state.last_image = image
        if state.pending_lost:
            pending, state.pending_lost = state.pending_lost, []
            for frame in pending:
                yield replace(frame, image=image.copy())
        yield Frame(image=image, index=index, pts=pts, time_base=self.time_base,
                    duration=duration, in_range=self._in_range(index), key_frame=av_frame.key_frame,
                    concealed=corrupt)

    def _emit_lost(self, state: _EmitState, pts: int, duration: int,
                   index_of: dict[int, int] | None, first: int, last: int | None,
                   next_frame: av.VideoFrame | None) -> Iterator[Frame]:
        index, duration = self._advance(state, pts, duration, index_of)
        if index < first or (last is not None and index > last):
            return
        if self._errors == "strict":
            raise InputError(f"input {self.path}: frame {index} "
                             f"({float(pts * self.time_base):.3f} s) is damaged and cannot be "
                             "decoded")
        self._warn_damage("%s: frame %d (%.3f s) could not be decoded (damaged packet); "
                          "repeating the previous frame in its place", self.path.name, index,
                          float(pts * self.time_base))
        self.concealed_frames.append(index)
        frame = Frame(image=state.last_image if state.last_image is not None else _EMPTY,
                      index=index, pts=pts, time_base=self.time_base, duration=duration,
                      in_range=self._in_range(index), concealed=True)
        if state.last_image is not None:
            yield replace(frame, image=state.last_image.copy())
        elif next_frame is not None:
            state.pending_lost.append(frame)  # filled with the next decoded image
        else:
            yield replace(frame, image=np.zeros((self.height, self.width, 3), self.image_dtype))

    def _duration_for(self, index: int, index_of: dict[int, int] | None) -> int:
        if self.range is not None and 0 <= index < len(self.range.durations):
            return self.range.durations[index]
        return self.default_duration

    def _in_range(self, index: int) -> bool:
        return self.range is None or self.range.start <= index <= self.range.end

    def to_rgb(self, av_frame: av.VideoFrame) -> np.ndarray:
        """A decoded frame → upright H×W×3 RGB (uint8, or uint16 full scale), C-contiguous,
        converted with the source's matrix and range."""
        if is_rgb_format(av_frame.format.name) or av_frame.format.name.startswith(("gray", "ya")):
            array = av_frame.to_ndarray(format=self.rgb_format, threads=self._threads)
        else:
            array = av_frame.to_ndarray(
                format=self.rgb_format,
                src_colorspace=self.colour.sws_matrix(self.coded_height),
                src_color_range=self.colour.sws_range(av_frame.format.name),
                dst_color_range=2,
                threads=self._threads,
            )
        array = self.orientation.to_upright(array)
        return np.ascontiguousarray(array)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close any decoder still open (an iteration abandoned midway)."""
        for container in list(self._open):
            try:
                container.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._open.clear()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_EMPTY = np.zeros((0, 0, 3), np.uint8)


@dataclass
class _EmitState:
    index: int
    next_pts: int | None = None
    last_image: np.ndarray | None = None
    pending_lost: list[Frame] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.pending_lost is None:
            self.pending_lost = []
