"""The torch compositing path: batched crops and paste-back on any torch device (GPU or CPU).

The same operations as :func:`~gpen_video.compose.reference.crop_face` and
:class:`~gpen_video.compose.reference.Blender`, written in torch so that frames uploaded once stay
on the device: every face crop of a batch comes from **one** ``grid_sample`` call, every restored
face (and its soft mask) is warped back over its region of interest by **one** more, compositing
happens on the device, and only finished frames come back. On the CPU it runs too (that is how it
is tested against the reference path). :class:`TorchFaces` is this path behind the
:class:`~gpen_video.compose.FaceGeometry` protocol.

Conventions: :mod:`gpen_video.compose`'s. Here frames are ``T×H×W×3`` tensors (channels last, as
decoded) and crops ``N×3×S×S`` float32 tensors (a restorer batch).

From pixel matrices to ``affine_grid``/``grid_sample`` (``align_corners=False``): torch's
normalised coordinate ``x_n ∈ [-1, 1]`` spans the image's outer **edges**, so pixel ``i`` of ``n``
(centre at ``i``) sits at ``x_n = (2i + 1)/n − 1``, i.e.

    to_norm(n)  = [[2/n, 0, 1/n − 1], …]        pixel → normalised
    to_pixel(n) = [[n/2, 0, (n − 1)/2], …]      normalised → pixel

``affine_grid`` wants θ mapping *output* normalised coordinates to *input* normalised ones, so
for a crop (output S×S, input the W×H frame) ``θ = to_norm(W, H) · M⁻¹ · to_pixel(S, S)``, and
for the paste (output a region box of Wb×Hb at frame offset (x0, y0), input the S×S crop)
``θ = to_norm(S, S) · M · shift(x0, y0) · to_pixel(Wb, Hb)``. (``align_corners=True`` would
instead put ±1 on the corner pixels' centres — a different scale by n/(n−1), the classic
half-pixel bug.)

Interpolation follows :data:`gpen_video.compose.mask.INTERPOLATION` (bicubic: OpenCV's and
torch's cubic convolution with a = −0.75; or bilinear), and crops are clipped to ``[0, 1]``.

Borders: crops sample outside the frame as ``cv2.BORDER_REFLECT101`` does. Any symmetric kernel
interpolates a mirrored image symmetrically, so that equals folding the sample coordinate about
the first and last pixel centres (``x_n = ±(1 − 1/n)``), done on the grid before sampling; the
kernel's own taps (±2 px for bicubic) read a 2-pixel reflect-101 margin added around each frame.
The paste samples outside the crop as zero (``BORDER_CONSTANT``, ``padding_mode="zeros"``).

Many frames in one call: the padded frames are stacked into one ``3×(T·(H+4))×(W+4)`` image and
each face's sample points are moved into its frame's band; folding first and the margin keep
every tap inside its own frame. Precision: float32 grids, ≲ 0.01 px of position error even for 32
stacked 4K frames.

Compositing is :class:`~gpen_video.compose.reference.Blender`'s: each face's alpha by the same
:func:`~gpen_video.compose.mask.face_coverage` rule, coverage ``1 − Π(1 − aᵢ)``, colour
``Σ aᵢcᵢ / Σ aᵢ``, in float32, rounded once (half to even) to the frame's dtype; pixels with
coverage 0 are left bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gpen_video.compose import mask as _mask
from gpen_video.compose.mask import MaskShape, Region, face_coverage
from gpen_video.compose.reference import Blender, to_hwc, to_nchw

_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0}
_MARGIN = 2  # reflect-101 pixels around each frame: the bicubic kernel reaches 2 px


def interpolation_mode() -> str:
    """``grid_sample`` mode of the shared interpolation (:data:`compose.mask.INTERPOLATION`)."""
    return _mask.INTERPOLATION


def to_norm(width: int, height: int) -> np.ndarray:
    """3×3: pixel coordinates (centres at integers) → ``align_corners=False`` normalised."""
    return np.array([[2.0 / width, 0.0, 1.0 / width - 1.0],
                     [0.0, 2.0 / height, 1.0 / height - 1.0],
                     [0.0, 0.0, 1.0]])


def to_pixel(width: int, height: int) -> np.ndarray:
    """3×3: ``align_corners=False`` normalised → pixel coordinates (inverse of :func:`to_norm`)."""
    return np.array([[width / 2.0, 0.0, (width - 1) / 2.0],
                     [0.0, height / 2.0, (height - 1) / 2.0],
                     [0.0, 0.0, 1.0]])


def _as3x3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(matrix, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def crop_theta(matrix: np.ndarray, frame_hw: tuple[int, int], size: int) -> np.ndarray:
    """2×3 θ for ``affine_grid`` (``align_corners=False``) that samples the ``size``² crop of a
    ``frame_hw`` frame given the frame → crop pixel matrix ``matrix``."""
    h, w = frame_hw
    theta = to_norm(w, h) @ np.linalg.inv(_as3x3(matrix)) @ to_pixel(size, size)
    return theta[:2]


def paste_theta(matrix: np.ndarray, region: Region, box_hw: tuple[int, int],
                size: int) -> np.ndarray:
    """2×3 θ that samples the ``size``² crop at ``M·(x, y)`` for the pixels of a ``box_hw``
    box whose top-left pixel is ``region``'s (x0, y0)."""
    hb, wb = box_hw
    shift = np.array([[1.0, 0.0, region.x0], [0.0, 1.0, region.y0], [0.0, 0.0, 1.0]])
    theta = to_norm(size, size) @ _as3x3(matrix) @ shift @ to_pixel(wb, hb)
    return theta[:2]


def fold_reflect101(coord: Tensor, n: int) -> Tensor:
    """Fold normalised coordinates into ``[-(1 − 1/n), 1 − 1/n]`` by reflection about the first
    and last pixel centres: sampling with any symmetric kernel then equals
    ``cv2.BORDER_REFLECT101``."""
    if n <= 1:
        return torch.zeros_like(coord)
    lo = -1.0 + 1.0 / n
    period = 2.0 * (2.0 - 2.0 / n)  # there and back between the two centres
    t = torch.remainder(coord - lo, period)
    half = period / 2.0
    return lo + torch.where(t > half, period - t, t)


def frames_to_tensor(frames: Sequence[np.ndarray] | np.ndarray, device: str | torch.device
                     ) -> Tensor:
    """Upload ``T`` frames (``H×W×3`` uint8/uint16 numpy) as one ``T×H×W×3`` tensor."""
    if isinstance(frames, np.ndarray):  # one frame (H×W×3) or T×H×W×3: no row-by-row stack
        stacked = np.ascontiguousarray(frames[None] if frames.ndim == 3 else frames)
    else:
        stacked = np.stack(list(frames))
    return torch.from_numpy(stacked).to(device, non_blocking=True)


def _upload(values, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Small host values (matrices, indices, factors) on ``device`` without a host sync: a
    plain ``.to("cuda")`` of pageable memory waits for the stream; from pinned memory, with
    ``non_blocking``, it does not (torch's host allocator keeps the buffer until the copy ran)."""
    host = torch.as_tensor(values, dtype=dtype)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


class GpuGeometry:
    """Batched crops and paste-back on one torch device for ``size``-px crops.

    Build once per run (it holds the mask on the device). Region selection and the mask shape
    are :class:`~gpen_video.compose.reference.Blender`'s, so both paths touch the same pixels.
    """

    def __init__(self, size: int, device: str | torch.device = "cpu", strength: float = 1.0,
                 shape: MaskShape | None = None) -> None:
        self.size = int(size)
        self.device = torch.device(device)
        self.blender = Blender(self.size, strength, shape or MaskShape())
        self.mask = torch.from_numpy(self.blender.mask).to(self.device)
        self.mode = interpolation_mode()

    # ------------------------------------------------------------------ crops
    def crops(self, frames: Tensor, frame_index: Sequence[int], matrices: np.ndarray) -> Tensor:
        """The aligned crops of ``N`` faces, ``N×3×S×S`` float32 RGB in ``[0, 1]``.

        Args:
            frames: ``T×H×W×3`` uint8/uint16 (or float in [0, 1]) on this device.
            frame_index: for each face, the frame (0 … T−1) it is in.
            matrices: ``N×2×3`` frame → crop pixel matrices.

        One ``grid_sample`` call for all faces of all frames.
        """
        n = len(frame_index)
        s = self.size
        if n == 0:
            return torch.empty((0, 3, s, s), device=self.device)
        t_count, h, w, _ = frames.shape
        scale = 1.0 / _MAX.get(frames.dtype, 1.0)
        m = _MARGIN
        planar = frames.to(torch.float32).permute(0, 3, 1, 2)  # T×3×H×W
        if min(h, w) > m:
            planar = F.pad(planar, (m, m, m, m), mode="reflect")  # reflect-101 margin
        else:  # tiny frames: replicate (folding already keeps samples inside)
            planar = F.pad(planar, (m, m, m, m), mode="replicate")
        hp, wp = h + 2 * m, w + 2 * m
        planar = planar.permute(1, 0, 2, 3).reshape(1, 3, t_count * hp, wp)
        theta = torch.from_numpy(np.stack([crop_theta(mat, (h, w), s) for mat in matrices]))
        grid = F.affine_grid(_upload(theta, self.device, torch.float32), [n, 3, s, s],
                             align_corners=False)  # normalised to the unpadded frame
        gx = fold_reflect101(grid[..., 0], w)
        gy = fold_reflect101(grid[..., 1], h)
        band = _upload(list(frame_index), self.device, torch.float32).view(n, 1, 1)
        # frame-normalised → frame pixel → pixel in the padded, stacked image → normalised there
        px = ((gx + 1.0) * w - 1.0) / 2.0 + m
        py = ((gy + 1.0) * h - 1.0) / 2.0 + m + band * hp
        gx = (2.0 * px + 1.0) / wp - 1.0
        gy = (2.0 * py + 1.0) / (t_count * hp) - 1.0
        grid = torch.stack([gx, gy], dim=-1).reshape(1, n * s, s, 2)
        out = F.grid_sample(planar, grid, mode=self.mode, padding_mode="border",
                            align_corners=False)  # 1×3×(N·S)×S
        out = out.view(3, n, s, s).permute(1, 0, 2, 3)
        if scale != 1.0:
            out = out * scale
        return out.clamp(0.0, 1.0).contiguous()

    # ------------------------------------------------------------------ paste
    def paste(self, frames: Tensor, restored: Tensor, frame_index: Sequence[int],
              matrices: np.ndarray, alphas: Sequence[float] | None = None) -> Tensor:
        """Composite restored faces into ``frames`` **in place**; returns ``frames``.

        Args:
            frames: ``T×H×W×3`` uint8/uint16 on this device.
            restored: ``N×3×S×S`` float32 in ``[0, 1]`` (a restorer's output).
            frame_index, matrices: as for :meth:`crops`.
            alphas: per-face factor (track ramps), default 1.

        Only pixels whose coverage is > 0 change; all others keep their exact value.
        """
        if frames.dtype not in _MAX:
            raise ValueError(f"frames are T×H×W×3 uint8/uint16, got {frames.dtype}")
        _, h, w, _ = frames.shape
        n = len(frame_index)
        alphas = [1.0] * n if alphas is None else [float(a) for a in alphas]
        strength = self.blender.strength
        faces = []
        for i in range(n):
            if alphas[i] <= 0.0 or strength <= 0.0:
                continue
            region = self.blender.region(matrices[i], (h, w))
            if not region.empty:
                faces.append((i, region))
        if not faces:
            return frames
        hb = max(r.y1 - r.y0 for _, r in faces)
        wb = max(r.x1 - r.x0 for _, r in faces)
        s = self.size
        theta = torch.from_numpy(np.stack([paste_theta(matrices[i], r, (hb, wb), s)
                                           for i, r in faces]))
        grid = F.affine_grid(_upload(theta, self.device, torch.float32), [len(faces), 4, hb, wb],
                             align_corners=False)
        index = _upload([i for i, _ in faces], self.device, torch.int64)
        rgba = torch.cat([restored.to(self.device, torch.float32).index_select(0, index),
                          self.mask.expand(len(faces), 1, s, s)], dim=1)
        warped = F.grid_sample(rgba, grid, mode=self.mode, padding_mode="zeros",
                               align_corners=False)  # F×4×Hb×Wb, one call for every face
        factor = _upload([alphas[i] * strength for i, _ in faces], self.device,
                         torch.float32).view(-1, 1, 1)
        coverage = face_coverage(warped[:, 3], factor)  # Blender's rule, on the device
        by_frame: dict[int, list[int]] = {}
        for k, (i, _) in enumerate(faces):
            by_frame.setdefault(int(frame_index[i]), []).append(k)
        for t, members in by_frame.items():
            self._composite(frames[t], [(faces[k][1], warped[k, :3], coverage[k])
                                        for k in members])
        return frames

    def _composite(self, frame: Tensor, members: list[tuple[Region, Tensor, Tensor]]) -> None:
        box = members[0][0]
        for region, _, _ in members[1:]:
            box = box.union(region)
        bh, bw = box.y1 - box.y0, box.x1 - box.x0
        weighted = torch.zeros((3, bh, bw), device=self.device)
        total = torch.zeros((bh, bw), device=self.device)
        keep = torch.ones((bh, bw), device=self.device)  # Π (1 − aᵢ)
        for region, color, alpha in members:
            rh, rw = region.y1 - region.y0, region.x1 - region.x0
            ys = slice(region.y0 - box.y0, region.y1 - box.y0)
            xs = slice(region.x0 - box.x0, region.x1 - box.x0)
            a = alpha[:rh, :rw]
            weighted[:, ys, xs] += color[:, :rh, :rw] * a
            total[ys, xs] += a
            keep[ys, xs] *= 1.0 - a
        cover = 1.0 - keep
        touched = cover > 0
        maxval = _MAX[frame.dtype]
        color = (weighted / total.clamp_min(1e-12)).clamp_(0.0, 1.0) * maxval  # 3×h×w
        view = frame[box.y0:box.y1, box.x0:box.x1]  # h×w×3
        src = view.to(torch.float32).permute(2, 0, 1)
        mixed = torch.round(src + (color - src) * cover).clamp_(0.0, maxval)
        new = torch.where(touched, mixed, src).permute(1, 2, 0)
        view.copy_(new.to(torch.int32).to(frame.dtype))


class TorchFaces:
    """Face geometry on a torch device (:class:`GpuGeometry`)."""

    name = "torch"

    def __init__(self, size: int, device: str, strength: float = 1.0,
                 shape: MaskShape | None = None) -> None:
        from gpen_video.device import DeviceLane

        self.size = int(size)
        self.geo = GpuGeometry(self.size, device, strength, shape)
        self.device = str(self.geo.device)
        self.mask = self.geo.blender.mask
        self.lane = DeviceLane(self.geo.device)  # streams, events, pinned copies, sync counts

    def frame(self, image: np.ndarray) -> Any:
        """Upload one frame: a ``1×H×W×3`` tensor on the device, from a pinned buffer on the
        restore stream. On the CPU it shares the image's memory when that is writeable (the
        paste then writes into it, as ``cpu`` does)."""
        return self.lane.upload(image, "align")

    def crop(self, frames: Sequence[Any], matrices: Sequence[np.ndarray]) -> list:
        """The aligned crops of ``N`` faces (face ``k`` in ``frames[k]``): views of one
        ``N×3×S×S`` tensor made by a single sampling call over the distinct frames."""
        order: dict[int, int] = {}
        distinct: list[Any] = []
        index = []
        for f in frames:
            if id(f) not in order:
                order[id(f)] = len(distinct)
                distinct.append(f)
            index.append(order[id(f)])
        with self.lane.work("align"):
            stacked = distinct[0] if len(distinct) == 1 else torch.cat(distinct)
            return list(self.geo.crops(stacked, index, np.stack(matrices)))

    def restore(self, restorer: Any, crops: list) -> list:
        """One ``restorer.restore`` call on the device batch; restored faces stay on the device."""
        with self.lane.work("restore"):
            out = restorer.restore(torch.stack(crops), trusted_range=True)  # crops are clipped
            return list(out.to(self.geo.device, torch.float32))

    def mark(self) -> Any:
        """An event after the crops and restores queued so far (None on the CPU): the compose
        stage waits for it on the device (:meth:`receive`)."""
        return self.lane.mark("restore")

    def receive(self, events: list, tensors: list) -> None:
        """The compositing stream waits for ``events`` and takes over ``tensors`` (frames and
        crops made on the restore stream), without the host waiting."""
        self.lane.receive(events, tensors, "paste")

    def to_host(self, items: list) -> list[np.ndarray]:
        """``S×S×3`` float32 numpy crops (one download for the list)."""
        if not items:
            return []
        with self.lane.work("temporal"):
            stacked = torch.stack(items)
        return list(to_hwc(self.lane.download(stacked, "temporal")))

    def from_host(self, crops: list[np.ndarray]) -> list:
        """Back to the device (one upload for the list)."""
        if not crops:
            return []
        batch = self.lane.upload(to_nchw(np.stack(crops)), "temporal")[0]
        with self.lane.work("temporal"):
            return list(batch)

    def paste(self, image: np.ndarray, frame: Any, items: list, matrices: Sequence[np.ndarray],
              alphas: Sequence[float]) -> np.ndarray:
        """Composite the faces into the uploaded ``frame`` on the device; the finished frame
        back as numpy (``image`` itself, unchanged, when there is nothing to paste)."""
        if not items:
            return image
        with self.lane.work("paste"):
            self.geo.paste(frame, torch.stack(items), [0] * len(items), np.stack(matrices),
                           list(alphas))
        return self.lane.download(frame[0], "paste")  # the one host sync of this frame
