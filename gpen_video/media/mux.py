"""Muxing what is not the restored video: the source's audio, subtitles and tags.

Used by :class:`~gpen_video.media.sink.VideoSink` (encoding) and by
:func:`gpen_video.farm.stitch.stitch` (packet copy of rendered segments), so both keep the same
things the same way:

* :class:`StreamCopier` — every audio and subtitle track of the source, read by its own demuxer
  and muxed by time :data:`AUDIO_LEAD` ahead of the video packet being written, so memory stays
  bounded whatever the length; packet-copied bit for bit when the container takes the codec,
  else audio is transcoded (AAC in .mp4, PCM in .mov/.mkv) and subtitles are skipped, each with
  a warning; with a time window only the packets that start inside it are copied.
* :func:`tag_output` — container and video-stream metadata (without the tags that describe the
  old encoding), the timecode advanced to the first written frame (:func:`timecode_at`) and the
  display matrix.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import av.error

from gpen_video.errors import GpenVideoError
from gpen_video.media.source import VideoSource, _open_input
from gpen_video.media.timecode import add_frames

log = logging.getLogger("gpen_video.media")

# Container-level tags that describe the old file, not the content.
DROP_CONTAINER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}
# Stream tags that describe the old encoding (re-created by the muxer when still true).
DROP_STREAM_TAGS = {"encoder", "vendor_id", "timecode", "duration", "bps", "number_of_frames",
                     "number_of_bytes", "_statistics_writing_app",
                     "_statistics_writing_date_utc", "_statistics_tags"}
AUDIO_LEAD = Fraction(1, 2)  # seconds: audio is muxed up to this far ahead of the video packet


def filter_tags(tags: dict[str, str], drop: set[str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.lower() not in drop and v is not None}


def packet_time(packet: av.Packet) -> Fraction | None:
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None or packet.time_base is None:
        return None
    return ts * packet.time_base


class _Track:
    """One copied (or transcoded) audio/subtitle track."""

    def __init__(self, in_stream: av.stream.Stream, out_stream: av.stream.Stream,
                 transcode: bool) -> None:
        self.in_stream = in_stream
        self.out_stream = out_stream
        self.transcode = transcode
        self.packets = 0
        # said while the streams are open (they are not once the copier is closed)
        kind, name = in_stream.type, in_stream.codec_context.name
        self.report = (f"{kind} {name} converted to {out_stream.codec_context.name}"
                       if transcode else f"{kind} {name} copied")


class StreamCopier:
    """Audio and subtitle tracks of the source, read by their own demuxer and muxed by time."""

    def __init__(self, source: VideoSource, out: av.container.OutputContainer, container: str,
                 window: tuple[Fraction, Fraction] | None, audio: bool, subtitles: bool) -> None:
        self._out = out
        self._window = window
        self._tracks: dict[int, _Track] = {}
        self._in = _open_input(source.path)
        self._pending: av.Packet | None = None
        self.done = False
        self.notes: list[str] = []
        self.skipped: list[str] = []  # "subtitle mov_text", … tracks the container cannot hold
        for stream in self._in.streams:
            wanted = (stream.type == "audio" and audio) or (stream.type == "subtitle"
                                                            and subtitles)
            if not wanted or stream.codec_context is None:
                stream.discard = av.stream.Discard.all
                continue
            track = self._add_track(stream, container, source.path.name)
            if track is None:
                stream.discard = av.stream.Discard.all
            else:
                self._tracks[stream.index] = track
        if not self._tracks:
            self._finish()
            return
        self._demuxer = self._in.demux(*[t.in_stream for t in self._tracks.values()])
        if window is not None and window[0] > 1:
            # seek a second early (packets before the range are skipped by time below)
            self._in.seek(int((window[0] - 1) * av.time_base), backward=True, any_frame=False)

    def _add_track(self, stream: av.stream.Stream, container: str, name: str) -> _Track | None:
        label = f"{stream.type} track #{stream.index} ({stream.codec_context.name}"
        label += f", {stream.language})" if stream.language else ")"
        transcode = False
        try:
            out_stream = self._out.add_stream_from_template(stream)
        except ValueError:
            if stream.type != "audio":
                self._note(f"{name}: {label} cannot be stored in a {container} file: skipped "
                           "(use .mkv to keep it)")
                self.skipped.append(f"{stream.type} {stream.codec_context.name}")
                return None
            target = {"mp4": "aac", "webm": "libopus"}.get(container) or _pcm_codec(stream)
            self._note(f"{name}: {label} cannot be stored in a {container} file: transcoding "
                       f"it to {target}")
            cc = stream.codec_context
            # Opus runs at 48 kHz (PyAV's encoder resamples the decoded frames to it)
            out_stream = self._out.add_stream(
                target, rate=48000 if target == "libopus" else cc.sample_rate)
            out_stream.codec_context.layout = cc.layout
            if target == "aac":
                out_stream.codec_context.bit_rate = max(128_000, 96_000 * cc.channels)
            transcode = True
        if stream.type == "audio":
            _name_unlabelled_channels(stream, out_stream, name)
        out_stream.metadata.update(filter_tags(dict(stream.metadata), DROP_STREAM_TAGS))
        out_stream.disposition = int(stream.disposition)
        return _Track(stream, out_stream, transcode)

    def report(self) -> list[str]:
        """What happens to each track: ``audio aac copied``, ``audio pcm_s24le converted to
        aac``, ``subtitle dvd_subtitle skipped``."""
        return [t.report for t in self._tracks.values()] + [f"{s} skipped" for s in self.skipped]

    def _note(self, text: str) -> None:
        log.warning(text)
        self.notes.append(text)

    def _keep(self, packet: av.Packet, track: _Track) -> bool:
        if self._window is None:
            return True
        start, end = self._window
        t = packet.pts if packet.pts is not None else packet.dts
        t = t * packet.time_base
        if track.in_stream.type == "subtitle":
            duration = (packet.duration or 0) * packet.time_base
            return t < end and t + duration > start
        return start <= t < end

    def pump(self, until: Fraction | None) -> None:
        """Mux packets whose time is ≤ ``until`` seconds (all remaining ones for None)."""
        while not self.done:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._demuxer)
                except StopIteration:
                    self._finish()
                    return
                except av.error.FFmpegError as exc:
                    log.warning("audio/subtitle read stopped early: %s", exc)
                    self._finish()
                    return
            if packet.size == 0 and packet.dts is None:
                continue  # PyAV's end-of-stream marker
            t = packet_time(packet)
            if until is not None and t is not None and t > until:
                self._pending = packet
                return
            if self._window is not None and t is not None and t > self._window[1] + 5:
                self._finish()
                return
            self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        track = self._tracks[packet.stream.index]
        if packet.dts is None or not self._keep(packet, track):
            return  # no dts: cannot be muxed (DESIGN §9); outside the range
        if track.transcode:
            for frame in track.in_stream.decode(packet):
                self._out.mux(track.out_stream.encode(frame))
        else:
            packet.stream = track.out_stream
            self._out.mux(packet)
        track.packets += 1

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        for track in self._tracks.values():
            if track.transcode:
                try:
                    for frame in track.in_stream.decode(None):
                        self._out.mux(track.out_stream.encode(frame))
                except av.error.EOFError:
                    pass
                self._out.mux(track.out_stream.encode(None))

    def close(self) -> None:
        try:
            self._in.close()
        except Exception:  # noqa: BLE001 - closing a reader is best effort
            pass


# FFmpeg's default layout per channel count (av_channel_layout_default), which its command line
# also gives input channels that carry no layout
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1",
                   8: "7.1"}


def _name_unlabelled_channels(stream: av.stream.Stream, out_stream: av.stream.Stream,
                              name: str) -> None:
    """Audio whose channels carry no layout (PCM from Matroska or WAV, say) gets FFmpeg's
    default layout for its channel count on the output: MP4 cannot write unlabelled channels
    (its trailer fails with "unsupported channel layout"), and the samples are unchanged."""
    layout = stream.codec_context.layout
    if not layout.name.endswith(("channel", "channels")):
        return
    default = DEFAULT_LAYOUTS.get(layout.nb_channels)
    if default is not None:
        out_stream.codec_context.layout = default
        log.info("%s: audio track #%d has %d unlabelled channels; written as %s", name,
                 stream.index, layout.nb_channels, default)


def _pcm_codec(stream: av.stream.Stream) -> str:
    """PCM that holds the source's decoded samples exactly."""
    name = stream.codec_context.format.name if stream.codec_context.format else "s16"
    if name.startswith(("flt", "dbl")):
        return "pcm_f32le"
    if name.startswith("s32"):
        return "pcm_s32le"
    return "pcm_s16le"


def timecode_at(timecode: str | None, offset: int, fps: Fraction, name: str) -> str | None:
    """``timecode`` advanced by ``offset`` frames (None without one; unchanged, with a
    warning naming ``name``, when it cannot be parsed)."""
    if not timecode:
        return None
    try:
        return add_frames(timecode, offset, fps) if offset else timecode
    except GpenVideoError:
        log.warning("%s: timecode %r not understood; copied unchanged", name, timecode)
        return timecode


def tag_output(out: av.container.OutputContainer, stream: av.stream.Stream,
               source: VideoSource, timecode: str | None) -> None:
    """Copy the source's stream tags, ``timecode`` and display matrix onto the video
    ``stream`` (the container's tags are set by the caller before it adds streams)."""
    if source.display_matrix is not None and not _has_display_matrix(stream):
        stream.set_display_matrix(source.display_matrix)
    stream.metadata.update(filter_tags(source.stream_metadata, DROP_STREAM_TAGS))
    if timecode:
        stream.metadata["timecode"] = timecode


def tag_container(out: av.container.OutputContainer, source: VideoSource) -> None:
    """The source's container tags, without those that describe the old file."""
    out.metadata.update(filter_tags(source.metadata, DROP_CONTAINER_TAGS))


def _has_display_matrix(stream: av.stream.Stream) -> bool:
    try:
        return stream.display_matrix is not None  # PyAV ≥ 16 exposes the codecpar side data
    except AttributeError:
        return False
