"""Display-matrix orientation: coded frames ↔ upright frames.

A video's display matrix (``AV_PKT_DATA_DISPLAYMATRIX``: 9 int32, 16.16 fixed point for the
2×2 part, FFmpeg layout ``[a b u; c d v; x y w]``) maps a coded pixel ``(x, y)`` to the displayed
position ``(a·x + c·y, b·x + d·y)`` (plus a translation). Only the 8 right-angle orientations
(rotations by multiples of 90° with optional mirroring) are applied; they are what phones and
cameras write. Any other angle is reported and left unapplied.

The source applies :meth:`Orientation.to_upright` so processing sees the picture as a player
shows it; the sink applies :meth:`Orientation.to_coded` and writes the *same* display matrix, so
the output plays exactly as the source does (nothing is re-rotated into the pixels).

Images are numpy arrays H×W×C (any dtype); results are C-contiguous.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

try:  # OpenCV's flips/transposes are several times faster than numpy copies at 1080p
    import cv2
except ImportError:  # pragma: no cover - opencv is a dependency; numpy keeps it correct
    cv2 = None


def parse_display_matrix(data: bytes) -> tuple[int, ...] | None:
    """36 bytes of side data → 9 int32 (native little-endian), or None if malformed."""
    if len(data) < 36:
        return None
    return struct.unpack("<9i", bytes(data[:36]))


def rotation_degrees(matrix: tuple[int, ...]) -> float:
    """Counter-clockwise rotation in degrees, as ``av_display_rotation_get`` (and PyAV's
    ``VideoFrame.rotation``) report it."""
    a, b, _, c, d = matrix[0], matrix[1], matrix[2], matrix[3], matrix[4]
    scale0 = math.hypot(a, c)
    scale1 = math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return 0.0
    return -math.degrees(math.atan2(b / scale1, a / scale0))


@dataclass(frozen=True)
class Orientation:
    """One of the 8 right-angle orientations.

    ``transpose``: swap x and y first; then ``flip_rows`` (upside down) / ``flip_cols``
    (mirror left-right) on the transposed image. ``matrix`` is the source's display matrix,
    written back unchanged by the sink (None: the source had none).
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    matrix: tuple[int, ...] | None = None
    applied: bool = True  # False when the matrix was not a right-angle orientation

    @classmethod
    def from_matrix(cls, matrix: tuple[int, ...] | None) -> Orientation:
        """The orientation a display matrix asks for (identity for None)."""
        if matrix is None:
            return cls()
        a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
        eps = 1 << 10  # 16.16 fixed point: anything below 1/64 counts as zero
        if abs(b) < eps and abs(c) < eps and abs(a) >= eps and abs(d) >= eps:
            return cls(False, d < 0, a < 0, matrix)
        if abs(a) < eps and abs(d) < eps and abs(b) >= eps and abs(c) >= eps:
            # display (x', y') = (c·y, b·x): transpose, then flip rows if b < 0, cols if c < 0
            return cls(True, b < 0, c < 0, matrix)
        return cls(matrix=matrix, applied=False)

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    @property
    def rotation(self) -> float:
        """Counter-clockwise degrees (PyAV's ``VideoFrame.rotation`` convention); 0 if none."""
        return 0.0 if self.matrix is None else rotation_degrees(self.matrix)

    def upright_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the upright picture for a coded ``width``×``height``."""
        return (height, width) if self.transpose else (width, height)

    def to_upright(self, image: np.ndarray) -> np.ndarray:
        """Coded H×W×C → upright (as displayed), C-contiguous."""
        if self.is_identity:
            return image
        out = _transpose(image) if self.transpose else image
        return _flip(out, self.flip_rows, self.flip_cols)

    def to_coded(self, image: np.ndarray) -> np.ndarray:
        """Upright → coded orientation (exact inverse of :meth:`to_upright`)."""
        if self.is_identity:
            return image
        out = _flip(image, self.flip_rows, self.flip_cols)
        return _transpose(out) if self.transpose else out


def _transpose(image: np.ndarray) -> np.ndarray:
    if cv2 is not None and image.ndim == 3 and image.shape[2] <= 4:
        return cv2.transpose(image)
    return np.ascontiguousarray(image.swapaxes(0, 1))


def _flip(image: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    if not (rows or cols):
        return np.ascontiguousarray(image)
    if cv2 is not None and image.ndim == 3 and image.shape[2] <= 4:
        return cv2.flip(image, -1 if rows and cols else (0 if rows else 1))
    return np.ascontiguousarray(image[:: -1 if rows else 1, :: -1 if cols else 1])
