"""Join rendered segments into one video: frame-exact, with the source's audio muxed once.

``stitch(segments, source, output)`` reads each segment's video packets (no decoding), places
every frame on the source's timeline and checks continuity before writing anything:

* every frame of a segment must be a frame of the source (its time within half a frame of one),
  and a segment's frames must be consecutive source frames (nothing dropped or doubled inside);
* segments, ordered by their first frame, must follow each other with no gap and no overlap;
* together they must cover exactly the expected span (the whole clip unless ``frames`` says
  otherwise), so the frame count is the span's.

Segments written by ``gpen-video … --frames A-B`` carry the source's own timestamps (the sink
keeps them), so a segment's place is found from its timestamps, whatever order the segments are
given in. Output timestamps are the source's, exactly: each packet's pts is the matched source
frame's (its dts keeps the segment's pts − dts offset, so long-GOP segments keep their decode
order), which also undoes the millisecond rounding of Matroska segments.

Then either

* **packet copy** (default): the segments' packets are muxed in order, unchanged; the segments
  must share one encoding (codec, size, pixel format, extradata) and the output container must
  hold it; or
* **re-encode** (``encode`` given): each segment is decoded to the pipeline's RGB images and
  encoded once in the delivery codec by :class:`~gpen_video.media.VideoSink`, exactly as a
  single-process run encodes (same pixels, same timing, same tags) — used with the lossless FFV1
  segments of a farm job (:mod:`gpen_video.farm.plan`).

Both mux the source's audio and subtitle tracks once, packet-copied (the sink's rules: the
span's packets only when the span is not the whole clip), and the source's container and stream
metadata, timecode (advanced to the span's first frame), display matrix and colour tags. The
output is written to a temporary file beside the target and renamed into place only when
complete.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import av.error

from gpen_video.errors import InputError, OutputError, UsageError
from gpen_video.farm import manifest
from gpen_video.farm.manifest import PictureCheck, packet_hash
from gpen_video.media import paths
from gpen_video.media.codecs import CONTAINERS, SOURCE_FAMILIES, is_image_sequence
from gpen_video.media.mux import AUDIO_LEAD, StreamCopier, tag_container, tag_output, timecode_at
from gpen_video.media.source import Frame, VideoSource
from gpen_video.options import EncodeOptions, RangeOptions

log = logging.getLogger("gpen_video.farm")

_ROUNDING = Fraction(1, 1000)  # segment timestamps may be this far off the source's


@dataclass(frozen=True)
class Timeline:
    """Presentation timestamps and display durations of every frame of the source."""

    pts: tuple[int, ...]
    durations: tuple[int, ...]
    time_base: Fraction

    @property
    def count(self) -> int:
        return len(self.pts)

    def time(self, index: int) -> Fraction:
        return self.pts[index] * self.time_base

    def index_at(self, t: Fraction, tolerance: Fraction) -> int | None:
        """The frame starting at time ``t`` (seconds): the nearest one, if it is less than
        ``tolerance`` and half a frame gap away, else None."""
        times = self._times
        i = bisect.bisect_left(times, t)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(times) and (best is None or abs(times[j] - t) < abs(times[best] - t)):
                best = j
        if best is None:
            return None
        gaps = [times[best + 1] - times[best]] if best + 1 < len(times) else []
        if best > 0:
            gaps.append(times[best] - times[best - 1])
        half = min(gaps) / 2 if gaps else Fraction(self.durations[best]) * self.time_base / 2
        return best if abs(times[best] - t) <= min(half - Fraction(1, 10**9), tolerance) else None

    @property
    def _times(self) -> list[Fraction]:
        cached = self.__dict__.get("_times_cache")
        if cached is None:
            cached = [p * self.time_base for p in self.pts]
            object.__setattr__(self, "_times_cache", cached)
        return cached


def source_timeline(source: str | os.PathLike[str]) -> Timeline:
    """Every frame's pts and duration, from the source's packets (no decoding).

    Raises:
        InputError: the source cannot be read.
    """
    with VideoSource(source, RangeOptions(start=0)) as src:
        rng = src.range
        assert rng is not None
        return Timeline(rng.pts, rng.durations, rng.time_base)


@dataclass
class Segment:
    """One segment file, placed on the source's timeline by :func:`place_segments`."""

    path: Path
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    extradata: bytes | None
    time_base: Fraction
    # (pts, dts, duration) per video packet, in decode order, in the segment's time base
    packets: list[tuple[int, int, int]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # sha1 of each packet, in decode order
    first: int = -1  # first source frame it holds
    last: int = -1  # last source frame it holds

    @property
    def frames(self) -> int:
        return len(self.packets)

    def encoding(self) -> tuple:
        return (self.codec, self.width, self.height, self.pix_fmt, self.extradata)

    def describe(self) -> str:
        return f"{self.codec} {self.width}x{self.height} {self.pix_fmt}"


def probe_segment(path: str | os.PathLike[str]) -> Segment:
    """Read a segment's video packets (no decoding).

    Raises:
        InputError: missing, unreadable, without video, or without timestamps.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"segment {path} does not exist")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"segment {path} cannot be read ({exc}); render it again") from None
    try:
        if not container.streams.video:
            raise InputError(f"segment {path} has no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        seg = Segment(path=path, codec=cc.name, width=cc.width, height=cc.height,
                      pix_fmt=cc.pix_fmt, extradata=bytes(cc.extradata) if cc.extradata else None,
                      time_base=stream.time_base)
        try:
            for packet in container.demux(stream):
                if packet.dts is None and packet.size == 0:
                    continue  # PyAV's flush marker
                if packet.pts is None or packet.dts is None:
                    raise InputError(f"segment {path} has packets without timestamps (Matroska "
                                     "keeps no decode timestamps for B-frames): render long-GOP "
                                     "segments as .mov or .mp4")
                seg.packets.append((int(packet.pts), int(packet.dts), int(packet.duration or 0)))
                seg.hashes.append(packet_hash(packet))
        except av.error.FFmpegError as exc:
            raise InputError(f"segment {path} is damaged ({exc}); render it again") from None
        if not seg.packets:
            raise InputError(f"segment {path} holds no video frames; render it again")
        return seg
    finally:
        container.close()


def place_segments(segments: list[Segment], timeline: Timeline, source: Path,
                   span: tuple[int, int]) -> list[Segment]:
    """Find each segment's frames on the source timeline and check continuity (module doc).

    Returns the segments in frame order.

    Raises:
        InputError: a segment's frames are not the source's, are not consecutive, or the
            segments leave a gap, overlap, or do not cover ``span`` exactly.
    """
    for seg in segments:
        presented = sorted(p for p, _, _ in seg.packets)
        # timestamps are exact, or rounded to the segment's time base (Matroska: 1 ms)
        tolerance = max(seg.time_base, _ROUNDING)
        indices = []
        for pts in presented:
            t = pts * seg.time_base
            index = timeline.index_at(t, tolerance)
            if index is None:
                raise InputError(f"segment {seg.path.name}: its frame at {float(t):.4f} s is not "
                                 f"at a frame time of {source.name} (a segment of another clip, "
                                 "or one whose timestamps were shifted, e.g. by audio priming in "
                                 ".mkv: render farm chunks with --segment, which writes no audio)")
            indices.append(index)
        for a, b in zip(indices, indices[1:]):
            if b != a + 1:
                what = "is missing" if b > a + 1 else "appears twice"
                frames = f"{a + 1}-{b - 1}" if b > a + 2 else str(a + 1 if b > a else b)
                raise InputError(f"segment {seg.path.name}: frame(s) {frames} {what} inside the "
                                 "segment; render it again")
        seg.first, seg.last = indices[0], indices[-1]
    ordered = sorted(segments, key=lambda s: (s.first, s.last))
    first, last = span
    expected = first
    for prev, seg in zip([None, *ordered], ordered):
        if seg.first > expected:
            after = f"after {prev.path.name}" if prev is not None else "at the start"
            raise InputError(f"frames {expected}-{seg.first - 1} are missing {after} (no segment "
                             f"holds them; the next, {seg.path.name}, starts at {seg.first}): "
                             "render them and stitch again")
        if seg.first < expected:
            if prev is None:
                raise InputError(f"segment {seg.path.name} starts at frame {seg.first}, before "
                                 f"the span {first}-{last}")
            raise InputError(f"segments {prev.path.name} and {seg.path.name} overlap (both hold "
                             f"frames {seg.first}-{min(prev.last, seg.last)}): stitch each frame "
                             "once")
        expected = seg.last + 1
    if expected <= last:
        raise InputError(f"frames {expected}-{last} are missing at the end (the last segment, "
                         f"{ordered[-1].path.name}, ends at {expected - 1}): render them and "
                         "stitch again")
    if expected > last + 1:
        raise InputError(f"segment {ordered[-1].path.name} ends at frame {expected - 1}, past "
                         f"the span {first}-{last}")
    return ordered


def verify_segments(placed: list[Segment], source: Path, level: str,
                    options: dict | None = None) -> dict[Path, dict]:
    """The placed segments' manifests, checked at ``level`` (``none``: nothing read; else each
    manifest must name this source, the frames the timestamps gave, one job's options and
    version, and every packet's checksum; :mod:`gpen_video.farm.manifest`). Pictures are checked
    while decoding (:func:`check_pictures`, or the re-encode's own decode).

    Raises:
        SegmentError: the first segment that fails, named (and its damaged frame).
    """
    if level == "none":
        return {}
    from gpen_video.media import VideoSource

    with VideoSource(source) as src:
        identity = manifest.source_identity(src)
    records = {}
    for seg in placed:
        record = manifest.read_manifest(seg.path)
        manifest.check_identity(seg.path, record, identity, seg.first, seg.last)
        records[seg.path] = record
    manifest.check_same_job([(s.path, records[s.path]) for s in placed], options)
    for seg in placed:
        shown = sorted(p for p, _, _ in seg.packets)
        frame_of = {p: seg.first + i for i, p in enumerate(shown)}
        manifest.check_packets(seg.path, records[seg.path],
                               [(p, h) for (p, _, _), h in zip(seg.packets, seg.hashes)],
                               frame_of)
    return records


def check_pictures(seg: Segment, record: dict) -> None:
    """Decode ``seg`` and compare every picture with its manifest's checksum (lossless
    segments; lossy ones carry packet checksums only, and are decoded to prove they decode).

    Raises:
        SegmentError: a frame decodes to another picture, or does not decode.
    """
    check = PictureCheck(seg.path, record)
    index = seg.first
    try:
        with av.open(str(seg.path)) as reader:
            for frame in reader.decode(reader.streams.video[0]):
                check.check(index, frame)
                index += 1
    except av.error.FFmpegError as exc:
        raise manifest.SegmentError(f"segment {seg.path.name} is damaged: frame {index} does "
                                    f"not decode ({exc}); render it again", seg.path,
                                    index) from None
    if index != seg.last + 1:
        raise manifest.SegmentError(f"segment {seg.path.name} decoded to {index - seg.first} of "
                                    f"its {seg.frames} frames: damaged; render it again", seg.path)


def expand_segments(segments: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Segment paths, a folder replaced by the video files in it (sorted; hidden files, such as
    unfinished temporaries, skipped); segment manifests (``SEGMENT.json``) given among them are
    left out (they are read beside their segment).

    Raises:
        InputError: a folder holds no video file.
    """
    out: list[Path] = []
    for item in map(Path, segments):
        if item.suffix == ".json" and Path(item.stem).suffix.lower() in CONTAINERS:
            continue  # a segment's manifest (``stitch SEGDIR/*`` names them too)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file()
                           and not p.name.startswith(".") and p.suffix.lower() in CONTAINERS)
            if not found:
                raise InputError(f"no segments in {item} (no {', '.join(sorted(CONTAINERS))} "
                                 "files)")
            out.extend(found)
        else:
            out.append(item)
    return out


@dataclass(frozen=True)
class StitchResult:
    """What :func:`stitch` wrote."""

    output: Path
    frames: int
    first: int  # first source frame in the output
    last: int  # last source frame in the output
    segments: int
    reencoded: bool
    seconds: float
    notes: tuple[str, ...] = ()


def stitch(segments: Sequence[str | os.PathLike[str]], source: str | os.PathLike[str],
           output: str | os.PathLike[str], *, encode: EncodeOptions | None = None,
           overwrite: bool = False, frames: tuple[int, int | None] | None = None,
           progress: Callable[[int, int], None] | None = None,
           timecode: str | None = None, verify: str = "auto",
           options: dict | None = None) -> StitchResult:
    """Join ``segments`` into ``output`` with ``source``'s audio and metadata (module doc).

    Args:
        segments: segment files, in any order (they are placed by their timestamps); a folder
            stands for the video files in it (names not starting with ".").
        source: the clip the segments were rendered from.
        output: the joined video (written only when complete).
        encode: None to packet-copy; else encode options of the delivery codec (an empty
            ``EncodeOptions()`` follows the source, as ``gpen-video IN OUT`` does).
        overwrite: replace ``output`` if it exists.
        frames: the span the segments must cover, ``(A, B)`` inclusive (B None or past the
            clip: to its end); default the whole clip.
        progress: called with (frames written, frames in total).
        timecode: the timecode of the source's frame 0, replacing the file's own (as
            ``EncodeOptions.timecode``; None: the file's).
        verify: ``auto``, ``none``, ``packets`` or ``frames``: how the segments prove they are
            this source's and undamaged (:mod:`gpen_video.farm.manifest`).
        options: the job's pixel options (:func:`~gpen_video.farm.manifest.pixel_options`),
            which every segment's manifest must match; None: they must only agree.

    Raises:
        UsageError: no segments, packet copy into a container that cannot hold the segments'
            codec, or segments with different encodings.
        InputError: the source or a segment cannot be read, or continuity fails.
        SegmentError: (an InputError) a segment of another clip or job, without its manifest,
            or damaged (``.segment`` names it, ``.frame`` the frame when known).
        OutputError: the output path cannot be written (or is the source or a segment).
    """
    t0 = time.perf_counter()
    source, output = Path(source), Path(output)
    level = manifest.effective_level(verify, encode is not None)
    if not segments:
        raise UsageError("no segments to stitch")
    seg_paths = expand_segments(segments)
    for s in seg_paths:
        if paths.same_file(s, output):
            raise OutputError(f"output {output} is one of the segments: choose another path")
    if is_image_sequence(output):
        raise UsageError(f"stitch writes a video file, not an image sequence ({output.name})")
    if output.suffix.lower() not in CONTAINERS:
        raise UsageError(f"output {output.name!r}: unknown file type; use "
                         f"{', '.join(sorted(CONTAINERS))}")
    paths.check_output(output, source, overwrite)

    timeline = source_timeline(source)
    last_frame = timeline.count - 1
    start, end = frames if frames is not None else (0, None)
    if start < 0 or start > last_frame:
        raise UsageError(f"--frames starts at {start} but {source.name} has frames 0-{last_frame}")
    end = last_frame if end is None or end > last_frame else end
    if end < start:
        raise UsageError(f"--frames {start}-{end}: need A <= B")
    placed = place_segments([probe_segment(p) for p in seg_paths], timeline, source,
                            (start, end))
    whole = start == 0 and end == last_frame
    total = end - start + 1
    records = verify_segments(placed, source, level, options)
    if encode is None:
        if level == "frames":
            for seg in placed:
                check_pictures(seg, records[seg.path])
        notes = _copy(placed, source, output, timeline, (start, end), whole, overwrite, progress,
                      total, timecode)
    else:
        if timecode is not None:
            encode = replace(encode, timecode=timecode)
        notes = _reencode(placed, source, output, timeline, (start, end), whole, encode,
                          overwrite, progress, total,
                          records if level == "frames" else {})
    return StitchResult(output=output, frames=total, first=start, last=end,
                        segments=len(placed), reencoded=encode is not None,
                        seconds=time.perf_counter() - t0, notes=tuple(notes))


# ------------------------------------------------------------------------------ packet copy


def _copy(placed: list[Segment], source: Path, output: Path, timeline: Timeline,
          span: tuple[int, int], whole: bool, overwrite: bool,
          progress: Callable[[int, int], None] | None, total: int,
          timecode: str | None = None) -> list[str]:
    container = _copy_container(placed, output)
    src_range = None if whole else RangeOptions(start=span[0], end=span[1])
    src = VideoSource(source, src_range)
    temp = paths.temp_file_for(output)
    out = None
    copier = None
    try:
        try:
            out = av.open(str(temp), "w", format=container)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {output}: {exc}") from None
        stream = _add_video_stream(out, placed[0], src, timeline, span[0], output, timecode)
        window = None
        if not whole:
            window = (Fraction(-10**9) if span[0] == 0 else timeline.time(span[0]),
                      timeline.time(span[1])
                      + Fraction(timeline.durations[span[1]]) * timeline.time_base)
        copier = StreamCopier(src, out, container, window, True, True)
        notes = list(copier.notes)
        _copy_packets(placed, out, stream, timeline, copier, progress, total)
        copier.pump(None)
        copier.close()
        copier = None
        out.close()
        out = None
        paths.finalize_file(temp, output, overwrite)
        temp = None
    except (av.error.FFmpegError, OSError) as exc:
        raise paths.write_error(exc, output.parent if str(output.parent) else Path("."),
                                f"writing {output} failed") from None
    finally:
        if copier is not None:
            copier.close()
        if out is not None:
            try:
                out.close()
            except Exception:  # noqa: BLE001 - deleted next anyway
                pass
        paths.remove_quietly(temp)
        src.close()
    return notes


def _copy_container(placed: list[Segment], output: Path) -> str:
    """The output's container format, once the segments are known to be packet-copyable.

    Raises:
        UsageError: the segments differ in encoding, or the container cannot hold their codec.
    """
    first = placed[0]
    for seg in placed[1:]:
        if seg.encoding() != first.encoding():
            headers = "; different codec headers" if seg.describe() == first.describe() else ""
            raise UsageError(f"segments are encoded differently ({first.path.name}: "
                             f"{first.describe()}, {seg.path.name}: {seg.describe()}{headers}): "
                             "render them with identical settings, or re-encode "
                             "(--reencode / --codec)")
    suffix = output.suffix.lower()
    container, holds = CONTAINERS[suffix]
    family = SOURCE_FAMILIES.get(first.codec, first.codec)
    if family not in holds:
        good = sorted(s for s, (_, fams) in CONTAINERS.items() if family in fams)
        raise UsageError(f"{suffix} cannot hold the segments' {family}: write "
                         f"{' or '.join(good) or 'another file type'}, or re-encode to a "
                         "delivery codec (--reencode / --codec)")
    return container


def _add_video_stream(out: av.container.OutputContainer, first: Segment, src: VideoSource,
                      timeline: Timeline, start: int, output: Path,
                      timecode: str | None = None) -> av.stream.Stream:
    """The output's video stream, a copy of the first segment's, tagged like the source."""
    tag_container(out, src)
    with av.open(str(first.path)) as seg0:
        stream = out.add_stream_from_template(seg0.streams.video[0])
    stream.time_base = timeline.time_base
    # the stream's frame rate (as the sink's): Matroska's default duration, MOV's timecode
    # track; PyAV copies it to avg_frame_rate when the header is written
    stream.codec_context.framerate = src.fps
    tag_output(out, stream, src, timecode_at(timecode or src.timecode, start, src.fps,
                                             output.name))
    return stream


def _copy_packets(placed: list[Segment], out: av.container.OutputContainer,
                  stream: av.stream.Stream, timeline: Timeline, copier: StreamCopier,
                  progress: Callable[[int, int], None] | None, total: int) -> None:
    """Mux every segment's video packets with the source's timestamps (module doc)."""
    written = 0
    last_dts = None
    for seg in placed:
        shown = sorted(p for p, _, _ in seg.packets)
        index_of = {p: seg.first + i for i, p in enumerate(shown)}
        with av.open(str(seg.path)) as reader:
            for packet in reader.demux(reader.streams.video[0]):
                if packet.dts is None and packet.size == 0:
                    continue
                index = index_of[int(packet.pts)]
                pts = timeline.pts[index]
                lag = round((packet.pts - packet.dts) * seg.time_base / timeline.time_base)
                dts = pts - lag
                if last_dts is not None and dts <= last_dts:
                    raise UsageError(f"segment {seg.path.name} cannot follow the previous "
                                     "one by packet copy (decode timestamps go backwards: "
                                     "different encoder delays); render the segments with "
                                     "identical settings, or re-encode (--reencode)")
                last_dts = dts
                packet.stream = stream
                packet.time_base = timeline.time_base
                packet.pts, packet.dts = pts, dts
                packet.duration = timeline.durations[index] if lag == 0 else \
                    round((packet.duration or 0) * seg.time_base / timeline.time_base)
                copier.pump(pts * timeline.time_base + AUDIO_LEAD)
                out.mux(packet)
                written += 1
                if progress is not None:
                    progress(written, total)


# ------------------------------------------------------------------------------ re-encode


def _reencode(placed: list[Segment], source: Path, output: Path, timeline: Timeline,
              span: tuple[int, int], whole: bool, encode: EncodeOptions, overwrite: bool,
              progress: Callable[[int, int], None] | None, total: int,
              records: dict[Path, dict]) -> list[str]:
    from gpen_video.media import VideoSink

    src = VideoSource(source, None if whole else RangeOptions(start=span[0], end=span[1]))
    try:
        sink = VideoSink(output, src, encode, overwrite=overwrite)
        with sink:
            written = 0
            for seg in placed:
                check = PictureCheck(seg.path, records[seg.path]) if seg.path in records \
                    else None
                inspect = None if check is None else \
                    (lambda i, f, c=check, s=seg: c.check(s.first + i, f))
                with VideoSource(seg.path, errors="strict", inspect=inspect) as reader:
                    if (reader.height, reader.width) != (src.height, src.width) or \
                            reader.image_dtype != src.image_dtype:
                        raise InputError(f"segment {seg.path.name} is {reader.width}x"
                                         f"{reader.height} {reader.bit_depth}-bit but "
                                         f"{source.name} is {src.width}x{src.height} "
                                         f"{src.bit_depth}-bit: not a segment of it")
                    index = seg.first
                    for frame in reader:
                        if index > seg.last:
                            raise InputError(f"segment {seg.path.name} decodes to more frames "
                                             "than it has packets; render it again")
                        sink.write(Frame(image=frame.image, index=index,
                                         pts=timeline.pts[index], time_base=timeline.time_base,
                                         duration=timeline.durations[index]))
                        index += 1
                        written += 1
                        if progress is not None:
                            progress(written, total)
                    if index != seg.last + 1:
                        raise InputError(f"segment {seg.path.name} decoded to {index - seg.first}"
                                         f" of its {seg.frames} frames; render it again")
        return list(sink.notes)
    finally:
        src.close()
