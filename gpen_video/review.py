"""``--compare``: review outputs that show the source beside the result.

* ``side-by-side`` — source on the left, result on the right: the output is twice as wide
  (an even width for any source; the height is the source's).
* ``split`` — one frame of the source's size: the left half from the source, the right half
  from the result, a 2-px mid-grey line between.

Both keep the source's timing, audio and every other track (:class:`~gpen_video.media.VideoSink`
with ``size=``). A review output is for looking at, not for delivery or for
``gpen-video measure`` (which compares frames of equal size).

Convention: images are upright ``H×W×3`` RGB, uint8 or uint16, as the pipeline's frames.
"""

from __future__ import annotations

import numpy as np

COMPARE = ("off", "side-by-side", "split")


def output_size(mode: str, width: int, height: int) -> tuple[int, int]:
    """Upright ``(width, height)`` of the written frames for a ``width×height`` source."""
    if mode == "side-by-side":
        return 2 * width, height
    return width, height


def compose(mode: str, source: np.ndarray, result: np.ndarray) -> np.ndarray:
    """The frame to write for ``mode`` (``result`` itself when ``off``)."""
    if mode == "off":
        return result
    if mode == "side-by-side":
        return np.concatenate([source, result], axis=1)
    if mode == "split":
        out = result.copy()
        w = source.shape[1]
        mid = w // 2
        out[:, :mid] = source[:, :mid]
        grey = np.iinfo(out.dtype).max // 2
        out[:, max(0, mid - 1):min(w, mid + 1)] = grey
        return out
    raise ValueError(f"compare mode {mode!r}: choose one of {', '.join(COMPARE)}")
