"""Identity transcode: the media path with no processing (tests, farm segments, baselines)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpen_video.media.sink import VideoSink
from gpen_video.media.source import ErrorPolicy, VideoSource
from gpen_video.options import EncodeOptions, RangeOptions


@dataclass(frozen=True)
class CopyResult:
    """What :func:`copy_video` wrote."""

    output: Path
    frames_written: int
    concealed_frames: tuple[int, ...]  # source frames repaired because the source was damaged
    notes: tuple[str, ...]  # what differs from the source and why (also logged as warnings)


def copy_video(src: str | os.PathLike[str], dst: str | os.PathLike[str],
               encode: EncodeOptions | None = None, range: RangeOptions | None = None,
               overwrite: bool = False, *, errors: ErrorPolicy = "conceal",
               audio: bool = True, subtitles: bool = True) -> CopyResult:
    """Decode ``src`` and encode it to ``dst`` unchanged: VideoSource → VideoSink.

    Frames go through the same upright RGB conversion the pipeline uses, so this is exactly the
    pipeline with an identity restorer. Only the range's frames are written; audio and
    subtitles are copied as :class:`VideoSink` describes.

    Raises:
        InputError: ``src`` is missing, unreadable, not a video, truncated, or damaged with
            ``errors="strict"``.
        OutputError: ``dst`` is ``src``, exists without ``overwrite``, or cannot be written.
        UsageError: an encode option or range that does not fit the source.
    """
    with VideoSource(src, range, errors=errors) as source:
        with VideoSink(dst, source, encode, overwrite, audio=audio,
                       subtitles=subtitles) as sink:
            for frame in source:
                sink.write(frame)
        return CopyResult(output=sink.path, frames_written=sink.frames_written,
                          concealed_frames=tuple(source.concealed_frames),
                          notes=tuple(sink.notes))
