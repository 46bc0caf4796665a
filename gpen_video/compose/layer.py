"""The restored faces of one frame as a layer: what the paste put where, and how strongly.

A :class:`FaceLayer` is the paste split into its two parts, per cluster of overlapping faces
(the regions :class:`~gpen_video.compose.reference.Blender` composites): ``colour`` (the
restored faces warped back, h×w×3 float32 in [0, 1], the frame's encoding) and ``coverage``
(h×w float32 alpha in [0, 1]). It is computed with the reference path's own functions
(:meth:`Blender.warp_to_region`, the coverage rule of :mod:`~gpen_video.compose.mask`, the same
clusters and overlap rule), so for every pixel::

    output = round(source + (colour·max − source)·coverage)   where coverage > 0
    output = source                                            where coverage = 0

That makes the comp passes exact: the **matte** is ``coverage`` (temporal ramps and strength
included), the **patch** is ``colour·coverage`` with alpha ``coverage`` (premultiplied), and
patch "over" source reproduces the output within rounding. Float plates are blended from the
same layer in their own space (:func:`gpen_video.media.scene_linear.blend_linear`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gpen_video.compose.mask import Region
from gpen_video.compose.reference import Blender, Paste, _clusters


@dataclass
class LayerPiece:
    """One cluster of faces: ``colour`` and ``coverage`` over ``region``."""

    region: Region
    colour: np.ndarray  # h×w×3 float32 in [0, 1]
    coverage: np.ndarray  # h×w float32 in [0, 1]; 0 = not touched


@dataclass
class FaceLayer:
    """Every face pasted into one frame (possibly none)."""

    height: int
    width: int
    pieces: list[LayerPiece] = field(default_factory=list)

    def matte(self) -> np.ndarray:
        """H×W float32 paste alpha (0 where the frame was not touched)."""
        out = np.zeros((self.height, self.width), np.float32)
        for p in self.pieces:
            r = p.region
            out[r.y0:r.y1, r.x0:r.x1] = p.coverage
        return out

    def patch(self) -> np.ndarray:
        """H×W×4 float32 premultiplied RGBA: the restored faces only."""
        out = np.zeros((self.height, self.width, 4), np.float32)
        for p in self.pieces:
            r = p.region
            out[r.y0:r.y1, r.x0:r.x1, :3] = p.colour * p.coverage[..., None]
            out[r.y0:r.y1, r.x0:r.x1, 3] = p.coverage
        return out


def face_layer(blender: Blender, crops: Sequence[np.ndarray], matrices: Sequence[np.ndarray],
               alphas: Sequence[float], shape: tuple[int, ...]) -> FaceLayer:
    """The layer :meth:`Blender.paste` would composite for these faces into a frame of
    ``shape`` (crops S×S×3 float32 in [0, 1], the restored and adjusted ones)."""
    layer = FaceLayer(int(shape[0]), int(shape[1]))
    if blender.strength <= 0.0:
        return layer
    items = []
    for crop, matrix, alpha in zip(crops, matrices, alphas, strict=True):
        if alpha <= 0.0:
            continue
        reg = blender.region(matrix, shape)
        if not reg.empty:
            items.append((reg, Paste(np.asarray(crop, np.float32), matrix, alpha)))
    for region, members in _clusters(items):
        if len(members) == 1:
            sub, face = members[0]
            colour, coverage = blender.warp_to_region(face, sub)
            region = sub
        else:
            h, w = region.y1 - region.y0, region.x1 - region.x0
            weighted = np.zeros((h, w, 3), np.float32)
            total = np.zeros((h, w), np.float32)
            keep = np.ones((h, w), np.float32)
            for sub, face in members:
                c, a = blender.warp_to_region(face, sub)
                ys = slice(sub.y0 - region.y0, sub.y1 - region.y0)
                xs = slice(sub.x0 - region.x0, sub.x1 - region.x0)
                weighted[ys, xs] += c * a[..., None]
                total[ys, xs] += a
                keep[ys, xs] *= 1.0 - a
            coverage = 1.0 - keep
            colour = weighted / np.maximum(total, np.float32(1e-12))[:, :, None]
        np.clip(colour, 0.0, 1.0, out=colour)
        if (coverage > 0).any():
            layer.pieces.append(LayerPiece(region, colour.astype(np.float32, copy=False),
                                           coverage.astype(np.float32, copy=False)))
    return layer
