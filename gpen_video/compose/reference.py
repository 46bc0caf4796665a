"""The reference compositing path: crops and paste-back on host frames with OpenCV.

:func:`crop_face` samples one aligned crop; :class:`Blender` pastes restored crops back (soft
mask, region-of-interest warps, one rounding); :class:`CpuFaces` is this path behind the
:class:`~gpen_video.compose.FaceGeometry` protocol. The conventions (coordinates, pixel centres,
value range, colour order, interpolation) are :mod:`gpen_video.compose`'s; the mask, its coverage
rule and the regions are :mod:`~gpen_video.compose.mask`'s.

Guarantees:

* Only each face's region of interest is warped (never a full-frame warp per face), and only
  pixels with alpha > 0 are written: every other pixel stays bit-identical to the input frame.
* Overlapping faces: coverage ``A = 1 − Π(1 − aᵢ)``, colour ``Σ aᵢ·cᵢ / Σ aᵢ`` — independent of
  the order of the faces, never darker or doubled where masks overlap.
* Compositing is in float32 and rounded once, to the frame's dtype.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from gpen_video.compose import mask as _mask
from gpen_video.compose.mask import MaskShape, Region, face_coverage, face_region, mask_support

# OpenCV's flag for the shared interpolation (compose.mask.INTERPOLATION)
CV2_INTERPOLATION = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}[_mask.INTERPOLATION]

FloatImage = np.ndarray  # H×W×C float32
Frame = np.ndarray  # H×W×3 uint8 | uint16, RGB


def to_hwc(batch: np.ndarray) -> np.ndarray:
    """``N×3×S×S`` → ``N×S×S×3`` (C-contiguous float32), for OpenCV."""
    return np.ascontiguousarray(np.asarray(batch, dtype=np.float32).transpose(0, 2, 3, 1))


def to_nchw(crops: np.ndarray) -> np.ndarray:
    """``N×S×S×3`` → ``N×3×S×S`` (C-contiguous float32), for a restorer."""
    return np.ascontiguousarray(np.asarray(crops, dtype=np.float32).transpose(0, 3, 1, 2))


def crop_face(frame: Frame, matrix: np.ndarray, size: int) -> FloatImage:
    """The aligned crop ``S×S×3`` float32 RGB in ``[0, 1]`` (bicubic, clipped; border reflected).

    ``matrix`` maps frame ``(x, y)`` to crop ``(u, v)``, pixel centres at integer coordinates.
    """
    m = np.asarray(matrix, dtype=np.float64)
    # only the frame pixels the crop samples (+3 px for the bicubic kernel) go to float32, so
    # the crop is not quantised and the cost does not grow with the frame
    inv = cv2.invertAffineTransform(m)
    edge = size - 1.0
    corners = np.array([[0, 0, 1], [edge, 0, 1], [0, edge, 1], [edge, edge, 1]]) @ inv.T
    h, w = frame.shape[:2]
    x0 = int(np.clip(math.floor(corners[:, 0].min()) - 3, 0, w - 1))
    y0 = int(np.clip(math.floor(corners[:, 1].min()) - 3, 0, h - 1))
    x1 = int(np.clip(math.ceil(corners[:, 0].max()) + 4, x0 + 1, w))
    y1 = int(np.clip(math.ceil(corners[:, 1].max()) + 4, y0 + 1, h))
    scale = np.float32(1.0 / float(np.iinfo(frame.dtype).max))
    sub = frame[y0:y1, x0:x1].astype(np.float32) * scale
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)  # sub (x, y) → crop (u, v)
    crop = cv2.warpAffine(sub, shifted, (size, size), flags=CV2_INTERPOLATION,
                          borderMode=cv2.BORDER_REFLECT101)
    return np.clip(crop, 0.0, 1.0, out=crop)


@dataclass
class Paste:
    """One face to paste: its restored crop, its transform, and its alpha factor."""

    crop: FloatImage  # S×S×3 float32 RGB in [0, 1]
    matrix: np.ndarray  # 2×3 float64, frame (x, y) → crop (u, v)
    alpha: float = 1.0  # ramp × strength, in [0, 1]


@dataclass
class Blender:
    """Pastes restored crops of size ``size`` into frames.

    Build once per run; :meth:`paste` may be called from several threads at once (its working
    arrays are per thread, nothing else is kept between calls).
    """

    size: int
    strength: float = 1.0
    shape: MaskShape = field(default_factory=MaskShape)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        self.mask = _mask.template_mask(self.size, self.shape)
        self._support = mask_support(self.mask)
        self._scratch = _Scratch()

    def region(self, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> Region:
        """Frame pixels the face's mask can touch, clipped to the frame (may be empty)."""
        return face_region(matrix, self._support, frame_shape)

    def warp_to_region(self, paste: Paste, region: Region) -> tuple[FloatImage, FloatImage]:
        """The crop and its alpha resampled onto ``region``'s pixels: (h×w×3, h×w) float32."""
        h, w = region.y1 - region.y0, region.x1 - region.x0
        return self._warp(paste, region, np.empty((h, w, 3), np.float32),
                          np.empty((h, w), np.float32))

    def _warp(self, paste: Paste, region: Region, color: FloatImage,
              alpha: FloatImage) -> tuple[FloatImage, FloatImage]:
        """:meth:`warp_to_region` into the given ``color`` (h×w×3) and ``alpha`` (h×w) arrays."""
        shift = np.array([[1.0, 0.0, region.x0], [0.0, 1.0, region.y0], [0.0, 0.0, 1.0]])
        m = np.asarray(paste.matrix, dtype=np.float64) @ shift  # region (x, y) → crop (u, v)
        size = (region.x1 - region.x0, region.y1 - region.y0)
        flags = CV2_INTERPOLATION | cv2.WARP_INVERSE_MAP
        # colour and mask warped apart: each result is contiguous (a channel view of one RGBA
        # warp costs more to read than the second warp; the values are the same)
        cv2.warpAffine(np.ascontiguousarray(paste.crop, dtype=np.float32), m, size, dst=color,
                       flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        cv2.warpAffine(self.mask, m, size, dst=alpha, flags=flags,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return color, face_coverage(alpha, np.float32(paste.alpha * self.strength))

    def paste(self, frame: Frame, faces: list[Paste], inplace: bool = False) -> Frame:
        """Composite ``faces`` into ``frame``; returns the result (``frame`` itself if inplace).

        Only pixels with alpha > 0 are written; all others keep their exact input value.
        """
        if frame.dtype not in (np.uint8, np.uint16) or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames are H×W×3 uint8/uint16 RGB, got {frame.dtype} {frame.shape}")
        out = frame if inplace else frame.copy()
        items = []
        for face in faces:
            if face.alpha <= 0.0 or self.strength <= 0.0:
                continue
            if face.crop.shape != (self.size, self.size, 3):
                raise ValueError(f"restored crops are {self.size}×{self.size}×3, got "
                                 f"{face.crop.shape}")
            reg = self.region(face.matrix, frame.shape)
            if not reg.empty:
                items.append((reg, face))
        for cluster_region, members in _clusters(items):
            self._composite(out, cluster_region, members)
        return out

    def _composite(self, out: Frame, reg: Region, members: list[tuple[Region, Paste]]) -> None:
        h, w = reg.y1 - reg.y0, reg.x1 - reg.x0
        maxval = np.float32(np.iinfo(out.dtype).max)
        scratch = self._scratch
        if len(members) == 1:
            sub, face = members[0]
            color, coverage = self._warp(face, sub, scratch.get("color", (h, w, 3)),
                                         scratch.get("alpha", (h, w)))
        else:
            weighted = np.zeros((h, w, 3), np.float32)
            total = np.zeros((h, w), np.float32)
            keep = np.ones((h, w), np.float32)  # Π (1 − aᵢ)
            for sub, face in members:
                c, a = self.warp_to_region(face, sub)
                ys = slice(sub.y0 - reg.y0, sub.y1 - reg.y0)
                xs = slice(sub.x0 - reg.x0, sub.x1 - reg.x0)
                weighted[ys, xs] += c * cv2.merge([a, a, a])
                total[ys, xs] += a
                keep[ys, xs] *= 1.0 - a
            coverage = 1.0 - keep
            color = weighted / np.maximum(total, np.float32(1e-12))[:, :, None]
            sub = reg
        view = out[sub.y0:sub.y1, sub.x0:sub.x1]
        touched = coverage > 0
        if not touched.any():
            return
        src = scratch.get("src", color.shape)
        np.copyto(src, view, casting="unsafe")  # the frame's values as float32, exactly
        # src + (clip(color, 0, 1)·max − src)·coverage, rounded and clipped, in place on
        # contiguous arrays (a broadcast over the channel axis or a strided view is several
        # times slower than the arithmetic)
        mixed = np.clip(color, np.float32(0.0), np.float32(1.0), out=color)
        mixed *= maxval
        mixed -= src
        mixed *= cv2.merge([coverage, coverage, coverage], dst=scratch.get("coverage", color.shape))
        mixed += src
        np.rint(mixed, out=mixed)
        np.clip(mixed, np.float32(0.0), maxval, out=mixed)
        # only pixels with alpha > 0 are written: every other one keeps its exact value (the
        # mask spelled out per channel: numpy's broadcast of a where-mask is ten times slower)
        result = scratch.get("result", color.shape, out.dtype)
        np.copyto(result, mixed, casting="unsafe")
        touched3 = cv2.merge([touched.view(np.uint8)] * 3, dst=scratch.get("touched", color.shape,
                                                                          np.uint8))
        np.copyto(view, result, where=touched3.view(bool))


class _Scratch(threading.local):
    """Per-thread working arrays of :meth:`Blender._composite`, grown as regions need and
    reused: fresh arrays of a big face's size cost page faults on every paste (RESULTS.md,
    "Numbers behind design choices")."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, str], np.ndarray] = {}

    def __reduce__(self) -> tuple:
        return (_Scratch, ())  # a copied or pickled Blender starts with empty working arrays

    def get(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """A C-contiguous ``shape`` array of ``dtype`` (contents undefined)."""
        size = math.prod(shape)
        key = (name, np.dtype(dtype).str)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[key] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)


def _clusters(items: list[tuple[Region, Paste]]) -> list[tuple[Region, list[tuple[Region, Paste]]]]:
    """Group faces whose regions overlap (transitively); each group gets its bounding region."""
    groups: list[tuple[Region, list[tuple[Region, Paste]]]] = []
    for reg, face in items:
        merged_region, merged = reg, [(reg, face)]
        rest = []
        for g_region, g_members in groups:
            if g_region.overlaps(merged_region):
                merged_region = merged_region.union(g_region)
                merged = g_members + merged
            else:
                rest.append((g_region, g_members))
        # a merge can make the union overlap groups already passed over: repeat until stable
        changed = True
        while changed:
            changed = False
            still = []
            for g_region, g_members in rest:
                if g_region.overlaps(merged_region):
                    merged_region = merged_region.union(g_region)
                    merged = g_members + merged
                    changed = True
                else:
                    still.append((g_region, g_members))
            rest = still
        groups = rest + [(merged_region, merged)]
    return groups


class CpuFaces:
    """Face geometry on host frames with OpenCV (this module)."""

    name = "cpu"
    device = "cpu"

    def __init__(self, size: int, strength: float = 1.0, shape: MaskShape | None = None) -> None:
        from gpen_video.device import DeviceLane

        self.size = int(size)
        self.blender = Blender(self.size, strength, shape or MaskShape())
        self.mask = self.blender.mask
        self.lane = DeviceLane("cpu")  # counts the restorer's device→host returns, if any

    def frame(self, image: np.ndarray) -> np.ndarray:
        """The frame as :meth:`crop` and :meth:`paste` want it: the image itself."""
        return image

    def crop(self, frames: Sequence[np.ndarray], matrices: Sequence[np.ndarray]) -> list:
        """The aligned crops of ``N`` faces (face ``k`` in ``frames[k]``), ``S×S×3`` each."""
        return [crop_face(f, m, self.size) for f, m in zip(frames, matrices, strict=True)]

    def restore(self, restorer: Any, crops: list) -> list:
        """One ``restorer.restore`` call for all ``crops``; the restored faces, same kind."""
        if str(getattr(restorer, "device", "cpu")).startswith("cuda"):
            self.lane.syncs.add("restore", "download")  # numpy out of a GPU restorer
        return list(to_hwc(restorer.restore(to_nchw(np.stack(crops)))))

    def mark(self) -> None:
        """Nothing to hand over between host stages."""
        return None

    def receive(self, events: list, tensors: list) -> None:
        """Nothing to wait for on the host path."""

    def to_host(self, items: list) -> list[np.ndarray]:
        return list(items)

    def from_host(self, crops: list[np.ndarray]) -> list:
        return list(crops)

    def paste(self, image: np.ndarray, frame: Any, items: list, matrices: Sequence[np.ndarray],
              alphas: Sequence[float]) -> np.ndarray:
        """Composite the faces into ``image`` (in place when it is writeable); the result."""
        if not items:
            return image
        pastes = [Paste(c, m, a) for c, m, a in zip(items, matrices, alphas, strict=True)]
        return self.blender.paste(image, pastes, inplace=image.flags.writeable)
