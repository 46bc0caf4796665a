"""Media I/O that loses nothing: PyAV decode and encode with every stream, timestamp and tag kept.

Public API (everything else in this package is an implementation detail):

``VideoSource(path, range=None, *, threads=0, errors="conceal")``
    Context manager and iterable of :class:`Frame`. Frames are upright (display matrix
    applied) H×W×3 RGB, C-contiguous, ``uint8`` for 8-bit sources and full-scale ``uint16``
    for deeper ones, converted with the source's colour matrix and range; decoder threading on.
    Typed properties: ``fps`` (Fraction), ``width``/``height`` (upright), ``coded_width``/
    ``coded_height``, ``frame_count`` (estimate unless a range scan reached the end),
    ``bit_depth``, ``pix_fmt``, ``rotation`` (counter-clockwise degrees), ``display_matrix``,
    ``orientation``, ``time_base`` (Fraction), ``colour`` (:class:`ColourTags`),
    ``sample_aspect_ratio``, ``timecode``, ``metadata``, ``image_dtype``, ``range``
    (:class:`ResolvedRange` or None). With a :class:`~gpen_video.options.RangeOptions`
    (``start``, ``end`` inclusive, ``overlap``) it seeks to the keyframe before
    ``start - overlap``, yields frames from there on with ``Frame.in_range`` telling which
    belong to the output, and clamps an ``end`` past the clip. Damaged packets are concealed
    (frame repeated, warning) unless ``errors="strict"``.

``Frame``
    Frozen dataclass: ``image``, ``index`` (0-based presentation-order number in the clip),
    ``pts``, ``time_base``, ``duration`` (time-base units), ``in_range``, ``key_frame``,
    ``concealed``; ``time``/``end_time`` in seconds; ``with_image(img)``.

``VideoSink(path, source, options=None, overwrite=False, *, audio=True, subtitles=True)``
    Context manager; ``write(frame, image=None)`` encodes an upright RGB image with the source
    frame's timing (frames with ``in_range=False`` are skipped); ``close()`` flushes, copies the
    remaining audio and renames the temporary file into place; ``abort()`` (or an exception in
    the ``with`` block) deletes it. Keeps pts/durations (VFR), pixel format and bit depth,
    colour tags, SAR, display matrix, timecode, metadata, and every audio/subtitle track.

``copy_video(src, dst, encode=None, range=None, overwrite=False, *, errors="conceal")``
    Identity transcode through VideoSource → VideoSink; returns :class:`CopyResult`.

``choose_encoder(source_info, output, options)`` → :class:`EncoderSpec`
    Pure codec/pixel-format/option choice (``gpen_video.media.codecs``).

Timecode helpers (``gpen_video.media.timecode``): ``parse_timecode("01:00:00:00", fps)``,
``format_timecode(n, fps)``, ``add_frames(tc, n, fps)``, ``frame_number(text, fps, origin)``
(a frame number given as an integer or a timecode, relative to the clip's start timecode).

Errors: :class:`~gpen_video.errors.InputError` (bad input), :class:`~gpen_video.errors.OutputError`
(bad output path), :class:`~gpen_video.errors.UsageError` (options that do not fit); all exit 2.
Warnings (transcoded audio, skipped subtitles, concealed frames, codec fallbacks) go to the
``gpen_video.media`` logger.
"""

from gpen_video.media.codecs import EncoderSpec, SourceVideoInfo, choose_encoder
from gpen_video.media.colour import ColourTags
from gpen_video.media.copy import CopyResult, copy_video
from gpen_video.media.orientation import Orientation
from gpen_video.media.sink import VideoSink
from gpen_video.media.source import Frame, ResolvedRange, VideoSource
from gpen_video.media.timecode import add_frames, format_timecode, frame_number, parse_timecode

__all__ = [
    "ColourTags",
    "CopyResult",
    "EncoderSpec",
    "Frame",
    "Orientation",
    "ResolvedRange",
    "SourceVideoInfo",
    "VideoSink",
    "VideoSource",
    "add_frames",
    "choose_encoder",
    "copy_video",
    "format_timecode",
    "frame_number",
    "parse_timecode",
]
