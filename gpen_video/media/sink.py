"""Streaming encode with PyAV that keeps everything but the pixels: :class:`VideoSink`.

What the output keeps from its :class:`~gpen_video.media.source.VideoSource`:

* every written frame's pts and duration (VFR kept; the encoder's guess at the last frame's
  duration is replaced by the source's), in the source's time base;
* pixel format / bit depth / chroma (see :mod:`gpen_video.media.codecs`), colour range,
  primaries, transfer and matrix tags, sample aspect ratio;
* the display matrix, byte for byte, set on the stream before the header (and so before any
  packet) is written; frames are turned back to the coded orientation before encoding;
* the timecode (advanced to the first written frame when a range starts later), container and
  stream metadata (language, handler, title, creation time; not the old encoder's name);
* every audio and subtitle track, packet-copied bit for bit with language and disposition when
  the output container takes the codec, else audio is transcoded (AAC in .mp4, PCM in .mov and
  .mkv) with a warning, and subtitles the container cannot hold are skipped with a warning.
  With a frame range, only packets whose start lies in the range's time span are copied.

Audio is read by a second demuxer on the source file and muxed by timestamp just ahead of the
video, so memory stays bounded whatever the length (no video is held back):
:mod:`gpen_video.media.mux`, shared with the farm's stitch.

Output safety: the file is written to a hidden temporary name beside the target and renamed
into place only by :meth:`VideoSink.close` after the last packet; any exception, :meth:`abort`
or garbage collection without ``close`` deletes it, so the target path never holds a partial
file. Image sequences (``out_%06d.png``) are written to a temporary folder and moved likewise.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from gpen_video import shutdown
from gpen_video.errors import GpenVideoError, OutputError
from gpen_video.media import paths
from gpen_video.media.codecs import (CODEC_NAMES, SOURCE_FAMILIES, EncoderSpec, choose_encoder,
                                     codec_name)
from gpen_video.media.colour import RANGE_FULL
from gpen_video.media.mux import AUDIO_LEAD, StreamCopier, packet_time, tag_container, \
    tag_output, timecode_at
from gpen_video.media.source import Frame, VideoSource
from gpen_video.options import EncodeOptions

log = logging.getLogger("gpen_video.media")


def check_sink(path: Path, source: VideoSource, options: EncodeOptions,
               overwrite: bool = False) -> EncoderSpec:
    """Every check :class:`VideoSink` makes before it writes anything, and the encoder it
    would use. Cheap (no file is created): the pipeline calls it before loading any model.

    Raises:
        OutputError: the output is the input, exists without ``overwrite`` (for an image
            sequence: its first file), or its folder is missing or not writable.
        UsageError: no or an unknown extension, a codec/pixel format that does not fit.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder: give a file name, e.g. "
                          f"{path / 'restored.mp4'}")
    spec = choose_encoder(source.video_info, path, options)
    paths.check_output(path, source.path, overwrite, spec.image_sequence)
    if spec.image_sequence:
        start = options.start_number
        if start is None:
            start = source.range.start if source.range is not None else 0
        first_name = path.parent / (path.name % start)
        if first_name.exists() and not overwrite:
            raise OutputError(f"output {first_name} already exists: use -y (--overwrite) "
                              "to replace it")
    return spec


class VideoSink(paths.PartialOutput):
    """Encode processed frames of ``source`` to ``path``, keeping everything else (module doc).

    Usage::

        with VideoSource("in.mov") as source, VideoSink("out.mov", source, EncodeOptions()) as sink:
            for frame in source:
                sink.write(frame.with_image(process(frame.image)))

    ``write`` takes a :class:`Frame` from ``source`` (its image replaced, or a separate
    ``image``); the image must have the source frame's shape and dtype (upright H×W×3 RGB,
    uint8 or full-scale uint16). Frames with ``in_range=False`` are ignored. Frames must be
    written in presentation order. ``size=(width, height)`` (upright) encodes images of another
    size than the source's (``--compare side-by-side``); everything else still follows the
    source.

    Raises (constructor):
        OutputError: the output is the input, exists without ``overwrite``, or its folder is
            missing or not writable.
        UsageError: a codec/pixel format/option that does not fit (see ``choose_encoder``).
    """

    def __init__(self, path: str | os.PathLike[str], source: VideoSource,
                 options: EncodeOptions | None = None, overwrite: bool = False, *,
                 audio: bool = True, subtitles: bool = True,
                 size: tuple[int, int] | None = None, recorder: object | None = None) -> None:
        self.path = Path(path)
        # farm segments: checksums of what is encoded, and the manifest written before the
        # rename (gpen_video.farm.manifest.SegmentRecorder)
        self._recorder = recorder
        self.source = source
        self.size = (source.width, source.height) if size is None else (int(size[0]),
                                                                         int(size[1]))
        self.options = options or EncodeOptions()
        self.overwrite = overwrite
        self.spec: EncoderSpec = check_sink(self.path, source, self.options, overwrite)
        self.notes: list[str] = list(self.spec.notes)
        if recorder is not None:
            recorder.codec(self.spec.family)
        for note in self.spec.notes:
            log.warning("%s: %s", self.path.name, note)
        self.frames_written = 0
        self._temp: Path | None = None
        self._out: av.container.OutputContainer | None = None
        self._copier: StreamCopier | None = None
        self._durations: deque[int] = deque()  # display durations of frames not yet muxed
        self._held: av.Packet | None = None  # the newest packet, muxed one behind
        self._first_pts: int | None = None
        self._end_pts: int | None = None  # where the last written frame ends
        self._shift: int | None = None  # first frame's pts - first packet's dts
        self._last_pts: int | None = None
        self._closed = False
        try:
            with shutdown.deferred_signals():  # a stop closes a complete output, or none
                self._open(audio, subtitles)
        except BaseException:
            self._discard()
            raise

    # ------------------------------------------------------------------ setup

    @property
    def start_number(self) -> int:
        """First file number of an image sequence (``EncodeOptions.start_number``, else the
        first output frame's index in the source)."""
        if self.options.start_number is not None:
            return self.options.start_number
        return self.source.range.start if self.source.range is not None else 0

    def _open(self, audio: bool, subtitles: bool) -> None:
        source, spec = self.source, self.spec
        if spec.image_sequence:
            self._temp = paths.temp_dir_for(self.path)
            self._out = av.open(str(self._temp / self.path.name), "w", format="image2",
                                options={"start_number": str(self.start_number)})
        else:
            self._temp = paths.temp_file_for(self.path)
            try:
                self._out = av.open(str(self._temp), "w", format=spec.container)
            except (av.error.FFmpegError, OSError) as exc:
                raise paths.write_error(exc, self.path.parent, f"cannot write {self.path}") \
                    from None
            tag_container(self._out, source)

        stream = self._out.add_stream(spec.encoder, rate=source.fps, options=dict(spec.options))
        stream.width, stream.height = self._coded_size()
        stream.pix_fmt = spec.pix_fmt
        cc = stream.codec_context
        cc.time_base = source.time_base
        stream.time_base = source.time_base
        cc.thread_count = 0
        cc.thread_type = "AUTO"  # frame and slice threads where the encoder has them
        if not spec.rgb_input:
            tags = source.colour
            cc.color_range = RANGE_FULL if (tags.range == 0 and source.pix_fmt.startswith(
                "yuvj")) else tags.range
            cc.color_primaries = tags.primaries
            cc.color_trc = tags.transfer
            cc.colorspace = tags.matrix
        if source.sample_aspect_ratio:
            cc.sample_aspect_ratio = source.sample_aspect_ratio
        if spec.image_sequence:
            dropped = [kind for _, kind, _ in source.other_streams if kind in ("audio", "subtitle")]
            if dropped and (audio or subtitles):
                note = (f"an image sequence holds no {' or '.join(sorted(set(dropped)))}: the "
                        "source's tracks are not written")
                log.warning("%s: %s", self.path.name, note)
                self.notes.append(note)
        else:
            tag_output(self._out, stream, source, self.output_timecode)
            window = None
            if source.range is not None:
                window = (source.range.start_time, source.range.end_time)
                if source.range.start == 0:
                    window = (Fraction(-10**9), window[1])  # keep priming before frame 0
            if (audio or subtitles) and self.options.tracks and source.other_streams:
                # (farm segments have none; an image sequence has no other streams)
                self._copier = StreamCopier(source, self._out, spec.container, window, audio,
                                             subtitles)
                self.notes.extend(self._copier.notes)
        self._stream = stream
        self._rgb_src_range = source.colour.sws_range(source.pix_fmt)
        self._sws_matrix = source.colour.sws_matrix(stream.height)

    def _coded_size(self) -> tuple[int, int]:
        """(width, height) as coded: the upright size turned back by the source's rotation."""
        if self.size == (self.source.width, self.source.height):
            return self.source.coded_width, self.source.coded_height
        w, h = self.size
        coded = self.source.orientation.to_coded(np.empty((h, w, 1), np.uint8))
        return coded.shape[1], coded.shape[0]

    @property
    def output_timecode(self) -> str | None:
        """The source's timecode (or ``EncodeOptions.timecode``) advanced to the first written
        frame (None if there is none)."""
        offset = self.source.range.start if self.source.range is not None else 0
        return timecode_at(self.options.timecode or self.source.timecode, offset,
                           self.source.fps, self.path.name)

    # ------------------------------------------------------------------ writing

    def write(self, frame: Frame, image: np.ndarray | None = None) -> bool:
        """Encode ``image`` (default ``frame.image``) with ``frame``'s timing.

        Returns False (and writes nothing) for frames outside the output range.

        Raises:
            ValueError: the image's shape or dtype differs from the source frames', or frames
                arrive out of order.
            OutputError: the encoder or disk failed (the partial output is deleted).
            DiskFullError: no space left, quota or file-size limit reached (exit 75).
        """
        if self._closed:
            raise ValueError("write() after close()")
        if not frame.in_range:
            return False
        image = frame.image if image is None else image
        expected = (self.size[1], self.size[0], 3)
        if image.shape != expected or image.dtype != self.source.image_dtype:
            raise ValueError(f"image must be {expected} {self.source.image_dtype} (upright RGB "
                             f"like the source frames), got {image.shape} {image.dtype}")
        if self._last_pts is not None and frame.pts <= self._last_pts:
            raise ValueError(f"frames must be written in presentation order: pts {frame.pts} "
                             f"after {self._last_pts}")
        self._last_pts = frame.pts
        av_frame = self._to_av_frame(image)
        alpha = getattr(frame, "alpha", None)  # PlateFrame: put back bit for bit
        if alpha is not None and av_frame.format.name.startswith(("yuva", "gbrap")):
            from gpen_video.media.alpha import put_alpha

            put_alpha(av_frame, self.source.orientation.to_coded(alpha[..., None])[..., 0],
                      self.source.alpha_bits)
        if self._recorder is not None:
            self._recorder.picture(frame.index, av_frame)
        av_frame.pts = frame.pts
        av_frame.time_base = frame.time_base
        self._durations.append(frame.duration)
        if self._first_pts is None:
            self._first_pts = frame.pts
        self._end_pts = frame.pts + frame.duration
        try:
            self._mux_video(self._stream.encode(av_frame))
        except (av.error.FFmpegError, OSError) as exc:
            self._discard()
            raise self._write_failed(exc) from None
        self.frames_written += 1
        return True

    def video_report(self) -> str:
        """``h264 → h264``, or ``MPEG-4 Part 2 (mpeg4) → h264 (why)`` when they differ."""
        source = self.source.video_info.codec
        out = self.spec.family
        text = f"{codec_name(source)} → {out}"
        if getattr(self.source, "carries_alpha", False) and self.spec.pix_fmt.startswith("yuva"):
            text += " (alpha kept)"
        if SOURCE_FAMILIES.get(source) == out:
            return text
        if self.options.codec is not None:
            why = "--codec"
        elif source not in SOURCE_FAMILIES:
            why = f"no {CODEC_NAMES.get(source, source)} encoder here; --codec chooses another"
        else:
            why = f"{self.path.suffix or 'this output'} cannot hold {SOURCE_FAMILIES[source]}"
        return f"{text} ({why})"

    def tracks_report(self) -> str:
        """What happened to the source's other tracks, for the closing summary."""
        if self._copier is not None:
            return ", ".join(self._copier.report()) or "none in the source"
        if not any(kind in ("audio", "subtitle") for _, kind, _ in self.source.other_streams):
            return "none in the source"
        if self.spec.image_sequence:
            return "not written (an image sequence holds none)"
        return "not written (segment without audio)" if not self.options.tracks else "none"

    def _write_failed(self, exc: BaseException) -> GpenVideoError:
        """OutputError, or DiskFullError (exit 75) when the disk, quota or size limit is full."""
        return paths.write_error(exc, self.path.parent if str(self.path.parent) else Path("."),
                                 f"writing {self.path} failed")

    def _to_av_frame(self, image: np.ndarray) -> av.VideoFrame:
        """Upright RGB → coded orientation → encoder pixel format, tagged like the source."""
        coded = np.ascontiguousarray(self.source.orientation.to_coded(image))
        # a copy (from_numpy_buffer would skip it, but the write as a whole is no faster:
        # RESULTS.md, "Numbers behind design choices")
        rgb = av.VideoFrame.from_ndarray(coded, format=self.source.rgb_format)
        spec, tags = self.spec, self.source.colour
        if spec.rgb_input:
            out = rgb.reformat(format=spec.pix_fmt, threads=0)
        else:
            out = rgb.reformat(format=spec.pix_fmt, src_color_range=RANGE_FULL,
                               dst_colorspace=self._sws_matrix,
                               dst_color_range=self._rgb_src_range, threads=0)
            out.color_range = self._rgb_src_range if tags.range == 0 and \
                self.source.pix_fmt.startswith("yuvj") else tags.range
            out.colorspace = tags.matrix
            out.color_primaries = tags.primaries
            out.color_trc = tags.transfer
        return out

    def _mux_video(self, packets: list[av.Packet]) -> None:
        """Mux encoded packets, one behind (the last one's duration is fixed in ``close``).

        Packet durations: the k-th packet in decode order gets the k-th written frame's
        display duration (what x264 and FFmpeg do: dts deltas follow the sorted pts), and the
        final packet gets whatever makes the track end where the last frame ends (MP4 derives
        the track's end from the last packet in decode order, which with B-frames is not the
        last frame shown).
        """
        for packet in packets:
            if self._durations:
                packet.duration = self._durations.popleft()
            if self._shift is None and packet.dts is not None and self._first_pts is not None:
                self._shift = self._first_pts - packet.dts
            held, self._held = self._held, packet
            if held is not None:
                self._mux_one(held)

    def _mux_one(self, packet: av.Packet) -> None:
        if self._copier is not None and not self._copier.done:
            t = packet_time(packet)
            self._copier.pump(None if t is None else t + AUDIO_LEAD)
        if self._recorder is not None:
            self._recorder.packet(packet)
        self._out.mux(packet)

    def _mux_last(self) -> None:
        packet, self._held = self._held, None
        if packet is None:
            return
        if packet.dts is not None and self._shift is not None and self._end_pts is not None:
            duration = self._end_pts - packet.dts - self._shift
            if duration > 0:
                packet.duration = duration
        self._mux_one(packet)

    # ------------------------------------------------------------------ finishing

    def close(self) -> Path:
        """Flush the encoder, copy the remaining audio, and move the output into place.

        Returns the output path. Idempotent.

        Raises:
            OutputError: no frame was written, the disk failed, or the target appeared
                meanwhile without ``overwrite`` (nothing is left at the target either way).
        """
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}: nothing to save")
            self._mux_video(self._stream.encode(None))
            self._mux_last()
            if self._copier is not None:
                self._copier.pump(None)
                self._copier.close()
            self._out.close()
            self._out = None
            if self._recorder is not None:
                self._recorder.write(self.path)  # the manifest first, then the segment
            if self.spec.image_sequence:
                paths.finalize_sequence(self._temp, self.path.parent, self.overwrite)
            else:
                paths.finalize_file(self._temp, self.path, self.overwrite)
            self._temp = None
        except GpenVideoError:
            self._discard()
            raise
        except (av.error.FFmpegError, OSError) as exc:
            self._discard()
            raise self._write_failed(exc) from None
        except BaseException:
            self._discard()
            raise
        self._closed = True
        return self.path

    def _release(self) -> None:
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the file is deleted next anyway
                pass
            self._out = None
