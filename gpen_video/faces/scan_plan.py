"""Where the full-frame scan looks: one image, or overlapping tiles plus an overview.

The scan exists to find faces that are not tracked yet. It must find faces down to a stated size,
``min_iod`` frame pixels between the eyes. RetinaFace MobileNet-0.25 finds faces reliably from
about 10 px between the eyes in the image it is given (measured on the Solvay photograph:
everything at ≥ 10.4 px, misses at 9.8 px and below), so the frame is scanned at the scale
``DETECTOR_IOD / min_iod`` (never above 1) with ``DETECTOR_IOD = 12`` for a margin.

When the frame at that scale fits in a tile (``tile_side`` on its longer side, a budget of about
1.5² of it in pixels) it is one image. Otherwise it is cut into overlapping tiles of the frame's
shape at ``tile_side``, plus an *overview* — the whole frame at ``tile_side`` — that finds the
faces too large to lie wholly inside one tile (``overlap`` scan pixels covers every face the
overview's scale cannot find). Each part is a :class:`ScanPart`; a scan "cycle" visits all of
them, in one frame or spread over several (see :mod:`gpen_video.faces.schedule`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DETECTOR_IOD = 12.0  # px between the eyes the detector finds reliably in the image it sees
TILE_AREA_SLACK = 2.25  # a scaled frame up to this × a tile's pixels is scanned in one piece
TILE_OVERLAP = 96  # scan pixels shared by neighbouring tiles


@dataclass(frozen=True)
class ScanPart:
    """A region of the frame and the size it is resized to before the detector sees it."""

    region: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels (x1, y1 exclusive)
    size: tuple[int, int]  # (width, height) the region is resized to
    border: int = 0  # black border added on every side after resizing

    @property
    def scale(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.region
        return self.size[0] / (x1 - x0), self.size[1] / (y1 - y0)


def fill_part(width: int, height: int) -> ScanPart:
    """The fill-the-frame look of :meth:`FaceDetector.detect` (``fill_fallback``): the frame at
    ``FALLBACK_SIDE`` px inside a ``FALLBACK_BORDER`` black border, for faces too large for the
    detector's anchors at scan scale (close-ups, aligned face crops)."""
    from gpen_video.faces.detect import FALLBACK_BORDER, FALLBACK_SIDE

    scale = FALLBACK_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return ScanPart((0, 0, width, height), size, FALLBACK_BORDER)


def scan_scale(min_iod: float) -> float:
    """The scale at which faces of ``min_iod`` px between the eyes are still found (≤ 1)."""
    if min_iod <= 0:
        return 1.0
    return min(1.0, DETECTOR_IOD / float(min_iod))


def _starts(length: int, window: int, overlap: int) -> list[int]:
    if window >= length:
        return [0]
    count = math.ceil((length - overlap) / (window - overlap))
    step = (length - window) / (count - 1)
    return [round(i * step) for i in range(count)]


def plan_scan(width: int, height: int, min_iod: float, tile_side: int = 640) -> list[ScanPart]:
    """The parts of one full scan of a ``width × height`` frame (see the module docstring).

    Raises:
        ValueError: a non-positive frame size or tile side.
    """
    if width <= 0 or height <= 0 or tile_side <= 0:
        raise ValueError(f"plan_scan: need a positive frame and tile size, got {width}×{height}, "
                         f"{tile_side}")
    scale = scan_scale(min_iod)
    long_side = max(width, height)
    tile_w = max(1, round(tile_side * width / long_side))
    tile_h = max(1, round(tile_side * height / long_side))
    full = (0, 0, width, height)
    scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
    if scaled_w * scaled_h <= TILE_AREA_SLACK * tile_w * tile_h or scale * long_side <= tile_side:
        return [ScanPart(full, (scaled_w, scaled_h))]
    region_w = min(width, math.ceil(tile_w / scale))
    region_h = min(height, math.ceil(tile_h / scale))
    overlap = math.ceil(TILE_OVERLAP / scale)
    parts = [ScanPart(full, (tile_w, tile_h))]  # the overview first: it finds the large faces
    for y in _starts(height, region_h, overlap):
        for x in _starts(width, region_w, overlap):
            region = (x, y, x + region_w, y + region_h)
            size = (max(1, round(region_w * scale)), max(1, round(region_h * scale)))
            parts.append(ScanPart(region, size))
    return parts
