"""Alpha kept bit for bit through a movie: ProRes 4444 (and any ``yuva``/``gbrap`` source).

The restoration touches colour only, so alpha never goes through a colour conversion: the
decoded alpha plane's own samples are carried beside the RGB image
(:class:`~gpen_video.media.sequence.PlateFrame.alpha`, upright like the image) and put straight
into the encoder frame's alpha plane, shifted between the decoder's and the encoder's sample
depth (FFmpeg's ProRes decoder gives 12-bit alpha, ``v10 << 2``, for 10-bit coded alpha; the
encoder takes 10-bit: ``>> 2`` restores the coded values exactly). A trip through RGBA64 would
rescale alpha with rounding (measured: up to 5 codes of 4095 off).

:class:`AlphaVideoSource` is :class:`~gpen_video.media.source.VideoSource` plus that plane;
:func:`put_alpha` writes it into an encoder frame (the sink calls it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import av
import numpy as np

from gpen_video.media.codecs import SourceVideoInfo, layout_has_alpha
from gpen_video.media.source import Frame, VideoSource


def _alpha_index(fmt: av.VideoFormat) -> int | None:
    """Index of the alpha plane of a planar format with one (``yuva*``, ``gbrap*``)."""
    name = fmt.name
    if name.startswith(("yuva", "gbrap")):
        return 3
    return None


def plane_samples(av_frame: av.VideoFrame, index: int) -> np.ndarray:
    """One plane's samples (uint8 or uint16), H×W, a copy."""
    plane = av_frame.planes[index]
    wide = any(int(c.bits) > 8 for c in av_frame.format.components)
    dtype = np.uint16 if wide else np.uint8
    step = plane.line_size // np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype).reshape(plane.height, step)
    return rows[:, :plane.width].copy()


def alpha_bits(fmt_name: str) -> int:
    """Bits per alpha sample of a pixel format (``yuva444p12le`` → 12)."""
    fmt = av.VideoFormat(fmt_name)
    return max(int(c.bits) for c in fmt.components)


def put_alpha(av_frame: av.VideoFrame, alpha: np.ndarray, source_bits: int) -> None:
    """Write ``alpha`` (coded orientation, ``source_bits`` per sample) into ``av_frame``'s alpha
    plane, shifted to its depth. Does nothing for a format without one."""
    index = _alpha_index(av_frame.format)
    if index is None:
        return
    bits = alpha_bits(av_frame.format.name)
    values = alpha.astype(np.uint32)
    if source_bits > bits:
        values >>= source_bits - bits
    elif bits > source_bits:
        values <<= bits - source_bits
    plane = av_frame.planes[index]
    dtype = np.uint16 if bits > 8 else np.uint8
    step = plane.line_size // np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype).reshape(plane.height, step)
    rows[:, :plane.width] = values.astype(dtype)


class AlphaVideoSource(VideoSource):
    """A movie with an alpha plane: frames are :class:`PlateFrame` with ``alpha`` set (the
    decoded alpha samples, upright, ``alpha_bits`` per sample); otherwise a VideoSource."""

    carries_alpha = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._alphas: dict[int | None, np.ndarray] = {}
        super().__init__(*args, **kwargs)
        self.alpha_bits = alpha_bits(self.pix_fmt)

    @property
    def has_alpha(self) -> bool:
        return True

    @property
    def video_info(self) -> SourceVideoInfo:
        from dataclasses import replace

        return replace(super().video_info, alpha=True)

    def to_rgb(self, av_frame: av.VideoFrame) -> np.ndarray:
        index = _alpha_index(av_frame.format)
        if index is not None:
            alpha = self.orientation.to_upright(plane_samples(av_frame, index)[..., None])
            self._alphas[av_frame.pts] = np.ascontiguousarray(alpha[..., 0])
        return super().to_rgb(av_frame)

    def frames(self) -> Iterator[Frame]:
        from gpen_video.media.sequence import PlateFrame

        last = None
        for frame in super().frames():
            alpha = self._alphas.pop(frame.pts, None)
            alpha = last if alpha is None else alpha  # a concealed frame repeats the last
            last = alpha
            yield PlateFrame(**{f.name: getattr(frame, f.name) for f in fields(Frame)},
                             alpha=alpha)


def needs_alpha_source(source: VideoSource) -> bool:
    """True when ``source``'s pixel format has an alpha plane worth carrying."""
    return layout_has_alpha(source.pix_fmt) and _alpha_index(av.VideoFormat(source.pix_fmt)) \
        is not None


__all__ = ["AlphaVideoSource", "alpha_bits", "needs_alpha_source", "plane_samples",
           "put_alpha"]
