"""Batched detection for tracked faces: face windows and scan parts, read back once per round.

A *round* takes the frames of a detection batch and two kinds of jobs:

* :class:`WindowJob` — a face expected near some landmarks (a track's prediction, or a face a
  scan just found). Its window is the upright canonical crop those landmarks give (the
  template's layout at the refinement scale, 288 px, so the face has the size and orientation
  the detector sees best), cut from the full-resolution frame: ``crops[0]`` px wide, room for
  the motion the prediction missed; this first window sits on a lattice (:func:`snap_window`),
  so nearby predictions — a chunk's and the whole run's — cut the same window. The
  best-scoring face within ``first_gate`` inter-ocular distances of the template is taken; each
  further pass cuts a tight ``crops[k]`` window again from the landmarks just found (the
  refinement of :meth:`FaceDetector.refine`, gate ½ IOD; a pass that finds nothing keeps the
  previous landmarks). The sizes were chosen with
  ``benchmarks/face_stability.py`` (``DetectOptions``: 224, then 2 × 192): steadier than
  full-frame detection with two 288 refinements, for faces of 45 and of 192 px between the
  eyes; 2 × 160 was within 10 % of it at 45 px but up to 31 % worse at 192 px, one refinement
  or a 192 first window is worse, and sides that are not multiples of 32 (the detector's
  coarsest stride: 176) are much worse (RESULTS.md, "Tracked detection: window sizes").
* :class:`ScanPart` jobs of :mod:`gpen_video.faces.scan_plan` — a frame region resized for the
  detector, thresholded and reduced by NMS like :meth:`FaceDetector.detect`.

A face much larger than its windows (window pixels bigger than frame pixels) is read through
block averages, as a mip-mapped texture is: its region is halved on the host, level by level, and
each window is the blend of the two levels that bracket its scale (:meth:`WindowDetector._levels`),
so every frame pixel counts (bilinear sampling alone skips most of them and aliases), the window
changes smoothly as the face grows or shrinks, and a 4K close-up's region is small before it
becomes float.

Device behaviour (the same code runs on the CPU): the frames' regions go to the detector's device
once; windows are sampled there (``grid_sample``; on the CPU OpenCV's warp, which is faster
there and reads the same host memory), every window of the round goes through the
network in one forward per pass, and the next pass's windows are computed there from the
previous pass's landmarks (a batched least-squares similarity), so passes need no host round
trip. Scan parts are padded to one size and go through in one forward; their candidates are cut
to the ``SCAN_TOP_K`` best per part on the device. Everything the host needs is packed into one
tensor and copied back once: one host sync per round. Only the scan's NMS runs on the host, on
those few candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpen_video.faces.align import TEMPLATE_IOD_512, face_size, similarity_to_template, \
    template_points
from gpen_video.faces.scan_plan import ScanPart
from gpen_video.faces.types import Detection

SCAN_TOP_K = 750  # candidates per scan part kept for the host's NMS
WINDOW_TOP_K = 256  # best-scoring priors per window a pass looks at (one face puts a few dozen
#                     above the score threshold: room for several faces in one window)
REFINE_GATE = 0.5  # later passes: the face must lie within this many IODs of the template
# The first window of a face sits on a lattice (see :func:`snap_window`): centre on a grid of
# SNAP_SHIFT window px (anchored to the frame), scale in steps of SNAP_ZOOM, angle in steps of
# SNAP_TURN radians.
SNAP_SHIFT = 2.0
SNAP_ZOOM = 2.0 ** (1.0 / 32.0)
SNAP_TURN = math.radians(1.0)


@dataclass(frozen=True)
class WindowJob:
    """Look for one face in frame ``frame`` (an index into the round's frames) near
    ``landmarks`` (``(5, 2)`` frame pixels)."""

    frame: int
    landmarks: np.ndarray
    key: Any = None  # the caller's label (a track id, a seed)


@dataclass(frozen=True)
class ScanJob:
    frame: int
    part: ScanPart


@dataclass(frozen=True)
class _WindowInputs:
    """What a round's first pass starts from, per window job: the frame → template matrices
    (N, 2, 3) and each region's frame rectangle (N, 4) on the device, its patch at the finer of
    its two levels (:meth:`WindowDetector._levels`), and the coarser level's patch with its
    weight in the blend, or ``None``."""

    matrices: Any
    regions: Any
    fine: list
    blends: list


@dataclass(frozen=True)
class RoundResult:
    windows: list[Detection | None]  # per WindowJob: the face found, or None
    scans: list[list[Detection]]  # per ScanJob: faces in frame coordinates, best first


def _similarity_batch(points, template):
    """Least-squares similarities (no reflection) taking ``points`` (N, 5, 2) onto ``template``
    (5, 2), as (N, 2, 3) matrices: the 2-D Umeyama fit in complex form."""
    import torch

    mu_s = points.mean(dim=1, keepdim=True)
    mu_d = template.mean(dim=0, keepdim=True)[None]
    xs = points - mu_s
    xd = template[None] - mu_d
    norm = (xs ** 2).sum(dim=(1, 2)).clamp_min(1e-12)
    a = ((xs[..., 0] * xd[..., 0] + xs[..., 1] * xd[..., 1]).sum(dim=1)) / norm
    b = ((xs[..., 0] * xd[..., 1] - xs[..., 1] * xd[..., 0]).sum(dim=1)) / norm
    linear = torch.stack([torch.stack([a, -b], dim=1), torch.stack([b, a], dim=1)], dim=1)
    shift = mu_d[:, 0] - (linear @ mu_s[:, 0, :, None])[..., 0]
    return torch.cat([linear, shift[..., None]], dim=2)


def snap_window(matrix: np.ndarray, centre: float) -> np.ndarray:
    """A frame → window similarity (2×3) moved onto a fixed lattice: its scale to a power of
    :data:`SNAP_ZOOM`, its angle to a multiple of :data:`SNAP_TURN`, and the frame point under
    the window point ``(centre, centre)`` to a grid of :data:`SNAP_SHIFT` window pixels laid
    from the frame's origin. Two predictions that differ by much less than a step give the same
    window, hence the same pixels and the same detections (a chunk that starts mid-clip rejoins
    the whole run's results; without it the window feedback keeps two runs a detector's noise
    apart for good). A reflection is returned as it is."""
    a, b = float(matrix[0, 0]), float(matrix[1, 0])
    if not math.isclose(float(matrix[1, 1]), a, rel_tol=1e-6, abs_tol=1e-12) or \
            not math.isclose(float(matrix[0, 1]), -b, rel_tol=1e-6, abs_tol=1e-12):
        return matrix
    zoom = SNAP_ZOOM ** round(math.log(math.hypot(a, b)) / math.log(SNAP_ZOOM))
    turn = SNAP_TURN * round(math.atan2(b, a) / SNAP_TURN)
    linear = zoom * np.array([[math.cos(turn), -math.sin(turn)],
                              [math.sin(turn), math.cos(turn)]])
    point = np.linalg.solve(matrix[:, :2], np.array([centre, centre]) - matrix[:, 2])
    step = SNAP_SHIFT / zoom
    point = step * np.round(point / step)
    return np.hstack([linear, (np.array([centre, centre]) - linear @ point)[:, None]])


def _invert_batch(matrix):
    """Inverses of (N, 2, 3) affine maps (closed form: ``torch.linalg.inv`` checks for
    singular input, which costs a host sync on CUDA)."""
    import torch

    a, b = matrix[:, 0, 0], matrix[:, 0, 1]
    c, d = matrix[:, 1, 0], matrix[:, 1, 1]
    det = a * d - b * c
    inverse = torch.stack([torch.stack([d, -b], dim=1), torch.stack([-c, a], dim=1)],
                          dim=1) / det[:, None, None]
    shift = -(inverse @ matrix[:, :, 2:])
    return torch.cat([inverse, shift], dim=2)


def torch_apply(matrix, points):
    """(N, 2, 3) matrices applied to (N, K, 2) points."""
    return points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]


class _Scratch:
    """Float32 memory for a round's frame regions, kept from round to round: a 1080p face's
    region is ~20 MB of float, and a fresh allocation of that size costs more in page faults on
    the CPU than the conversion that fills it. :meth:`take` hands out consecutive slices until
    :meth:`reset`; work queued on the device's stream is ordered, so the next round may reuse
    the memory."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self._buffer = None
        self._used = 0

    def reset(self) -> None:
        self._used = 0

    def take(self, n: int):
        import torch

        if self._buffer is None or self._used + n > self._buffer.numel():
            # slices handed out earlier this round keep the old buffer alive until they go
            size = max(5 * (self._used + n) // 4, 1 << 20)
            self._buffer = torch.empty(size, dtype=torch.float32, device=self.device)
            self._used = 0
        piece = self._buffer[self._used:self._used + n]
        self._used += n
        return piece


class WindowDetector:
    """Rounds of window and scan jobs on a :class:`~gpen_video.faces.detect.FaceDetector`'s
    network (see the module docstring).

    ``scale``: the template size that sets the face's scale in every window (the face's
    inter-ocular distance there is ``scale·107.4/512`` px); ``crops``: the side of each pass's
    window, centred on the template (the first one wide, for the motion the prediction missed;
    later ones tight, since only the face's own pixels matter to the detector then).
    """

    def __init__(self, detector: Any, scale: int = 288, crops: Sequence[int] = (288, 192, 192),
                 first_gate: float = 1.0, first_scale: int | None = None) -> None:
        import torch

        crops = tuple(int(c) for c in crops)
        if scale < 32 or not crops or min(crops) < 32:
            raise ValueError(f"WindowDetector: need scale >= 32 and at least one crop >= 32 "
                             f"(got {scale}, {crops})")
        self.detector = detector
        self.options = detector.options
        self.device = detector.device
        self.scale = int(scale)
        self.crops = crops
        self.first_gate = float(first_gate)
        self._template = torch.tensor(template_points(self.scale), dtype=torch.float32,
                                      device=self.device)
        # per pass: the template size that sets the face's scale, and the gate in IODs
        self._scales = [float(first_scale or scale)] + [float(scale)] * (len(crops) - 1)
        self._gates = [self.first_gate] + [REFINE_GATE] * (len(crops) - 1)
        self._grids: dict[int, Any] = {}
        self._scratch = _Scratch(self.device)
        self._reach = self._pass_reach()
        self._centre = 0.5 * (self.scale - 1)  # the template's centre, template pixels
        # windows warped by OpenCV on the host (the CPU), or grid_sample'd on the device
        self.host_windows = self.device.type == "cpu"

    def _pass_reach(self) -> float:
        """Half the side of the square, around the template's centre (in template pixels at
        :attr:`scale`), that holds every window the passes can cut: the first one, and each later
        one centred wherever the passes before it may have moved the face (``first_gate``
        inter-ocular distances, then :data:`REFINE_GATE` per pass)."""
        iod = TEMPLATE_IOD_512 * self.scale / 512.0
        reach, moved = 0.0, 0.0
        for size, scale, gate in zip(self.crops, self._scales, self._gates):
            reach = max(reach, moved + 0.5 * size * self.scale / scale)
            moved += gate * iod
        return reach

    def _crop_grid(self, size: int):
        """``size×size×3`` homogeneous pixel coordinates ``(u, v, 1)`` of a window."""
        import torch

        if size not in self._grids:
            axis = torch.arange(size, dtype=torch.float32, device=self.device)
            v, u = torch.meshgrid(axis, axis, indexing="ij")
            self._grids[size] = torch.stack([u, v, torch.ones_like(u)], dim=-1)
        return self._grids[size]

    # -- inputs on the device -----------------------------------------------------------------

    def _pixels(self, frame: np.ndarray, region: tuple[int, int, int, int]):
        """``region`` of ``frame`` as an ``h×w×C`` integer tensor on the device (``C`` = 1 for a
        grey frame, else 3; on the CPU it shares the frame's memory; pinned, no host sync)."""
        x0, y0, x1, y1 = region
        if frame.ndim == 2:
            frame = frame[:, :, None]
        return self.detector.to_device(frame[y0:y1, x0:x1, :3])

    def _as_float(self, pixels):
        """``h×w×C`` integer pixels as a 1×3×h×w float32 **RGB** tensor (0–255; channels-last
        memory in the round's scratch buffer, no copy beyond the conversion to float). The
        detector's BGR order is made on the network's input, which is smaller (:meth:`_sample`,
        scans)."""
        import torch

        if pixels.dtype == torch.uint16:
            pixels = pixels.to(torch.int32)
        h, w, channels = pixels.shape
        tensor = self._scratch.take(h * w * 3).view(h, w, 3)
        tensor.copy_(pixels.expand(-1, -1, 3) if channels == 1 else pixels)
        if pixels.dtype == torch.int32:
            tensor *= 255.0 / 65535.0
        return tensor.permute(2, 0, 1)[None]

    def _to_device(self, frame: np.ndarray, region: tuple[int, int, int, int]):
        """``region`` of ``frame`` as :meth:`_as_float` gives it."""
        return self._as_float(self._pixels(frame, region))

    def _patches(self, frame: np.ndarray, region: tuple[int, int, int, int], level: int,
                 coarse: bool) -> list:
        """``region`` of ``frame`` (its sides multiples of ``2**level``, or of twice that with
        ``coarse``) halved ``level`` times on the host, as :meth:`_as_float` gives it, and with
        ``coarse`` halved once more. A halving is OpenCV's area filter at a factor of two: each
        pixel the mean of a 2×2 block, rounded half up; pixel ``j`` of a patch ``f`` times
        smaller covers frame pixels ``x0 + f·j … x0 + f·j + f − 1`` (likewise rows)."""
        import cv2

        def halved(image: np.ndarray) -> np.ndarray:
            h, w = image.shape[:2]
            return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)

        def whole(image: np.ndarray) -> tuple[int, int, int, int]:
            return 0, 0, image.shape[1], image.shape[0]

        if level == 0:
            out = [self._to_device(frame, region)]  # the frame's own memory, no copy
            if not coarse:
                return out
        x0, y0, x1, y1 = region
        pixels = frame[y0:y1, x0:x1] if frame.ndim == 2 else frame[y0:y1, x0:x1, :3]
        for _ in range(level):
            pixels = halved(pixels)
        if level > 0:
            out = [self._to_device(pixels, whole(pixels))]
        if coarse:
            pixels = halved(pixels)
            out.append(self._to_device(pixels, whole(pixels)))
        return out

    def _scan_image(self, frame: np.ndarray, region: tuple[int, int, int, int],
                    size: tuple[int, int]):
        """``region`` of ``frame`` resized to ``size`` (w, h) — bilinear, antialiased — as
        :meth:`_as_float` gives it.

        On the CPU an 8-bit region is resized before it becomes float (torch's uint8 resize,
        the same filter, rounded to whole levels): converting a 4K frame to float first costs
        more than the resize and the network's input together (measured 2026-11-28:
        the git history of benchmarks/RESULTS.md, "Tracked detection in ``gpen-video bench``"). Elsewhere the float region is resized."""
        import torch.nn.functional as F

        x0, y0, x1, y1 = region
        w, h = size
        if (w, h) == (x1 - x0, y1 - y0):
            return self._to_device(frame, region)
        if self.device.type == "cpu" and frame.dtype == np.uint8:
            image = self._pixels(frame, region).permute(2, 0, 1)[None]
            small = F.interpolate(image, size=(h, w), mode="bilinear", antialias=True,
                                  align_corners=False)
            return self._as_float(small[0].permute(1, 2, 0))
        return F.interpolate(self._to_device(frame, region), size=(h, w), mode="bilinear",
                             antialias=True, align_corners=False)

    def _levels(self, matrix: np.ndarray) -> tuple[int, float]:
        """The levels a face's windows are sampled from, for a frame → template ``matrix``:
        with ``s`` the widest pass's window pixels per frame pixel and ``λ = log2(1/s)``, level
        ``L = ⌊λ⌋`` (the region halved ``L`` times) blended with level ``L + 1`` at weight
        ``λ − L``, as trilinear mip-mapping does; a face no larger than its windows (``λ ≤ 0``)
        is read from the frame's own pixels. A single level per face, switching at powers of
        two, made the windows jump where a face's size crossed one (B1's jerky clip at 269 px
        between the eyes zooms across a crossing: 1.06× full detection's error, 0.89× blended;
        RESULTS.md, "Tracked detection: window sizes")."""
        zoom = math.hypot(float(matrix[0, 0]), float(matrix[1, 0])) * max(self._scales) / \
            self.scale
        if not zoom > 0.0 or zoom >= 1.0:
            return 0, 0.0
        lam = min(-math.log2(zoom), 10.0)
        level = int(math.floor(lam))
        return level, lam - level

    def _window_region(self, frame_shape: tuple[int, ...], matrix: np.ndarray, factor: int = 1
                       ) -> tuple[tuple[int, int, int, int], int]:
        """The frame rectangle a window's passes sample (:meth:`_pass_reach` around the
        template's centre, plus the interpolation kernel's pixel), clipped to the frame, made of
        whole ``factor × factor`` blocks (a power of two) on a grid laid from the frame's origin —
        blocks the frame cuts off are dropped, and ``factor`` is halved while a side would hold
        none — and the factor used. Every pass samples real pixels: a later window that reached
        past this rectangle would read reflected ones (a mirrored half face after a large
        first-pass correction)."""
        h, w = frame_shape[:2]
        lo_t, hi_t = self._centre - self._reach, self._centre + self._reach
        corners = np.array([[lo_t, lo_t], [hi_t, lo_t], [lo_t, hi_t], [hi_t, hi_t]])
        inverse = np.linalg.inv(matrix[:, :2])
        frame_pts = (corners - matrix[:, 2]) @ inverse.T
        lo, hi = frame_pts.min(axis=0) - 1.0, frame_pts.max(axis=0) + 1.0
        x0, y0 = np.floor(lo).astype(int)
        x1, y1 = np.ceil(hi).astype(int) + 1
        x0, y0 = min(max(0, x0), w - 1), min(max(0, y0), h - 1)
        x1, y1 = max(min(w, x1), x0 + 1), max(min(h, y1), y0 + 1)
        while factor > 1:
            bx0, by0 = x0 // factor * factor, y0 // factor * factor
            nx = min(-(-(x1 - bx0) // factor), (w - bx0) // factor)
            ny = min(-(-(y1 - by0) // factor), (h - by0) // factor)
            if nx >= 1 and ny >= 1:
                return (int(bx0), int(by0), int(bx0 + nx * factor), int(by0 + ny * factor)), factor
            factor //= 2
        return (int(x0), int(y0), int(x1), int(y1)), 1

    def _windows(self, inputs: _WindowInputs, inverse, size: int):
        """The ``size``² windows of a pass (``inverse``: window → frame pixels, (N, 2, 3)), each
        blended from its two levels where it has two."""
        return self._sample(inputs.fine, inputs.regions, inverse, size, inputs.blends)

    def _sample(self, patches: list, regions, inverse, size: int, blends: list | None = None):
        """The ``size``² windows, BGR minus the detector's means: ``inverse`` (N, 2, 3) maps
        window → frame pixels, ``regions`` (N, 4) float holds each patch's frame rectangle
        (a patch may be a whole number of times smaller than its rectangle: :meth:`_patches`);
        ``blends[n]``, where given, is another patch of window ``n``'s rectangle and its weight:
        the window is the two samples mixed.

        Bilinear, reflected at the patch's edge. On the CPU OpenCV warps each window
        (:meth:`_sample_host`: a quarter faster per round than ``grid_sample`` there, the same
        images to 0.01 levels); on a GPU, and as the reference, :meth:`_sample_grid`."""
        blends = blends or [None] * len(patches)
        if self.host_windows:
            return self._sample_host(patches, regions, inverse, size, blends)
        return self._sample_grid(patches, regions, inverse, size, blends)

    @staticmethod
    def _patch_map(inverse: np.ndarray, rect: np.ndarray, patch) -> np.ndarray:
        """Window → patch pixels (2×3) from window → frame pixels, for a patch of ``rect``
        (:meth:`_patches`: pixel ``j`` covers frame pixels ``x0 + f·j … x0 + f·j + f − 1``)."""
        factor = (rect[2] - rect[0]) / patch.shape[-1]
        out = inverse.copy()
        out[:, 2] -= rect[:2]
        out /= factor
        out[:, 2] -= (factor - 1.0) / (2.0 * factor)
        return out

    def _sample_host(self, patches: list, regions, inverse, size: int, blends: list):
        """:meth:`_sample` with ``cv2.warpAffine`` on host tensors (patches are channels-last
        memory: :meth:`_to_device`, so each is a plain H×W×3 array to OpenCV)."""
        import cv2
        import torch

        inverse = inverse.numpy().astype(np.float64)
        rects = regions.numpy().astype(np.float64)
        rgb = np.empty((len(patches), size, size, 3), np.float32)
        other = np.empty((size, size, 3), np.float32)

        def warp(patch, n, dst):
            cv2.warpAffine(patch[0].permute(1, 2, 0).numpy(),
                           self._patch_map(inverse[n], rects[n], patch), (size, size), dst=dst,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)

        for n, patch in enumerate(patches):
            warp(patch, n, rgb[n])
            if blends[n] is not None:
                coarse, weight = blends[n]
                warp(coarse, n, other)
                cv2.addWeighted(rgb[n], 1.0 - weight, other, weight, 0.0, dst=rgb[n])
        # planar BGR minus the means, one channel at a time (a flip and a broadcast on the
        # channels-last tensor cost six times as much)
        bgr = np.empty((len(patches), 3, size, size), np.float32)
        means = self.detector._mean.reshape(3).tolist()
        for c in range(3):
            np.subtract(rgb[..., 2 - c], np.float32(means[c]), out=bgr[:, c])
        return torch.from_numpy(bgr)

    def _sample_grid(self, patches: list, regions, inverse, size: int, blends: list):
        """:meth:`_sample` with ``grid_sample`` on the detector's device (reflection about the
        patch's outer pixel edges, as ``cv2.BORDER_REFLECT``; a smaller patch spans its
        rectangle's outer edges as the rectangle's own pixels do)."""
        import torch
        import torch.nn.functional as F

        xy = torch.einsum("hwk,njk->nhwj", self._crop_grid(size), inverse)  # N×S×S×2 frame px
        x0, y0, x1, y1 = (regions[:, i, None, None] for i in range(4))
        grids = torch.stack([(2.0 * (xy[..., 0] - x0) + 1.0) / (x1 - x0) - 1.0,
                             (2.0 * (xy[..., 1] - y0) + 1.0) / (y1 - y0) - 1.0], dim=-1)
        def sample(patch, n):
            return F.grid_sample(patch, grids[n:n + 1], mode="bilinear",
                                 padding_mode="reflection", align_corners=False)

        crops = [sample(patch, n) if blends[n] is None else
                 torch.lerp(sample(patch, n), sample(blends[n][0], n), blends[n][1])
                 for n, patch in enumerate(patches)]
        return torch.cat(crops).flip(1) - self.detector._mean

    # -- the network --------------------------------------------------------------------------

    def _forward(self, batch):
        """The network's raw outputs for ``batch``: box offsets (N, P, 4), scores (N, P),
        landmark offsets (N, P, 10), and the :class:`~gpen_video.faces.priors.Priors` that
        decode them into the images' pixels."""
        h, w = batch.shape[2:]
        loc, conf, landm = self.detector.forward(batch)
        return loc, conf[:, :, 1], landm, self.detector.priors(h, w)

    def _pick(self, loc, scores, landm, priors, template, gate: float):
        """Per window, the best-scoring face within ``gate`` crop pixels of the template (the
        prior NMS would keep; choosing the prior nearest the template instead would pull the
        landmarks towards the window's own guess): found, box, score, landmarks (N, 5, 2).
        Only the :data:`WINDOW_TOP_K` best-scoring priors are decoded and gated."""
        import torch

        top, index = scores.topk(min(WINDOW_TOP_K, scores.shape[1]), dim=1)  # N×K
        chosen = priors.take(index)
        points = chosen.landmarks(landm.gather(1, index[..., None].expand(-1, -1, 10)))
        dist = (points - template).norm(dim=-1).mean(dim=-1)  # N×K
        ok = (top > self.options.score_threshold) & (dist <= gate)
        best = torch.where(ok, top, torch.full_like(top, -math.inf)).argmax(dim=1)
        rows = torch.arange(best.shape[0], device=best.device)
        at = index[rows, best]
        box = priors.take(at[:, None]).boxes(loc[rows, at][:, None])[:, 0]
        return ok[rows, best], box, top[rows, best], points[rows, best]

    def _inputs(self, frames: Sequence[np.ndarray], jobs: Sequence[WindowJob],
                matrices: Sequence[np.ndarray]) -> _WindowInputs:
        """Regions, patches and blend weights for jobs whose frame → template matrices are
        ``matrices``."""
        fine, blends, regions = [], [], []
        for job, matrix in zip(jobs, matrices):
            level, weight = self._levels(matrix)
            blend = weight > 0.0
            wanted = 1 << (level + blend)  # the coarsest level's block
            region, factor = self._window_region(frames[job.frame].shape, matrix, wanted)
            if factor < wanted:  # cut by the frame's edge to less than a block
                level, blend = factor.bit_length() - 1, False
            patches = self._patches(frames[job.frame], region, level, blend)
            regions.append(region)
            fine.append(patches[0])
            blends.append((patches[1], weight) if blend else None)
        to_device = self.detector.to_device
        return _WindowInputs(to_device(np.stack(matrices).astype(np.float32)),
                             to_device(np.array(regions, dtype=np.float32)), fine, blends)

    def _run_windows(self, frames: Sequence[np.ndarray], jobs: Sequence[WindowJob]):
        """All passes of all windows; returns one packed (N, 16) tensor on the device: found,
        score, box (4), landmarks (10), in frame pixels."""
        import torch

        inputs = self._inputs(frames, jobs, [
            snap_window(similarity_to_template(job.landmarks, self.scale), self._centre)
            for job in jobs])
        matrix = inputs.matrices
        n = len(jobs)
        found = torch.zeros(n, dtype=torch.bool, device=self.device)
        score = torch.zeros(n, device=self.device)
        box = torch.zeros(n, 4, device=self.device)
        landmarks = torch.zeros(n, 5, 2, device=self.device)
        for size, scale, gate in zip(self.crops, self._scales, self._gates):
            k = scale / self.scale
            offset = 0.5 * (size - scale)  # the template centred in this window
            window = matrix * k
            window[:, :, 2] += offset
            inverse = _invert_batch(window)
            ok, bx, sc, pt = self._pick(*self._forward(self._windows(inputs, inverse, size)),
                                        self._template * k + offset,
                                        gate * TEMPLATE_IOD_512 * scale / 512.0)
            pt_frame = torch_apply(inverse, pt)
            centre = torch_apply(inverse, (0.5 * (bx[:, :2] + bx[:, 2:]))[:, None])[:, 0]
            half = 0.5 * (bx[:, 2:] - bx[:, :2]) / window[:, :, :2].norm(dim=2)
            bx_frame = torch.cat([centre - half, centre + half], dim=1)
            found = found | ok
            score = torch.where(ok, sc, score)
            box = torch.where(ok[:, None], bx_frame, box)
            landmarks = torch.where(ok[:, None, None], pt_frame, landmarks)
            next_matrix = _similarity_batch(pt_frame, self._template)
            matrix = torch.where(ok[:, None, None], next_matrix, matrix)
        return torch.cat([found.float()[:, None], score[:, None], box,
                          landmarks.reshape(n, 10)], dim=1)

    def _run_scans(self, frames: Sequence[np.ndarray], jobs: Sequence[ScanJob]):
        """All scan parts in one forward; (N, K, 15) candidates: score, box, landmarks."""
        import torch
        import torch.nn.functional as F

        width = max(job.part.size[0] + 2 * job.part.border for job in jobs)
        height = max(job.part.size[1] + 2 * job.part.border for job in jobs)
        images = []
        for job in jobs:
            w, h = job.part.size
            patch = self._scan_image(frames[job.frame], job.part.region, (w, h))
            patch = patch.flip(1)  # BGR, as the detector was trained
            b = job.part.border
            image = F.pad(patch, (b, b, b, b)) - self.detector._mean  # black border
            w, h = w + 2 * b, h + 2 * b
            images.append(F.pad(image, (0, width - w, 0, height - h)))  # mean grey
        loc, scores, landm, priors = self._forward(torch.cat(images))
        k = min(SCAN_TOP_K, scores.shape[1])
        top, index = scores.topk(k, dim=1)
        chosen = priors.take(index)  # decode only the candidates
        boxes = chosen.boxes(loc.gather(1, index[..., None].expand(-1, -1, 4)))
        points = chosen.landmarks(landm.gather(1, index[..., None].expand(-1, -1, 10)))
        return torch.cat([top[..., None], boxes, points.reshape(len(jobs), k, 10)], dim=2)

    # -- public -------------------------------------------------------------------------------

    def run(self, frames: Sequence[np.ndarray], windows: Sequence[WindowJob],
            scans: Sequence[ScanJob]) -> RoundResult:
        """One round: every window and scan job, one copy back to the host."""
        import torch

        if not windows and not scans:
            return RoundResult([], [])
        lane = self.detector.lane
        with lane.work("detect"), torch.inference_mode():
            self._scratch.reset()
            packed = []
            if windows:
                packed.append(self._run_windows(frames, windows).reshape(-1))
            if scans:
                packed.append(self._run_scans(frames, scans).reshape(-1))
            packed = torch.cat(packed)
        host = lane.download(packed, "detect").astype(np.float64)  # the round's one host sync
        n_windows = 16 * len(windows)
        return RoundResult(self._window_results(host[:n_windows].reshape(-1, 16)),
                           self._scan_results(host[n_windows:], scans))

    def _keep(self, landmarks: np.ndarray) -> bool:
        if self.options.min_face <= 0:
            return True
        try:
            return face_size(landmarks) >= self.options.min_face
        except ValueError:
            return False

    def _window_results(self, rows: np.ndarray) -> list[Detection | None]:
        out: list[Detection | None] = []
        for row in rows:
            landmarks = row[6:16].reshape(5, 2)
            if row[0] > 0.5 and self._keep(landmarks):
                out.append(Detection(row[2:6], float(row[1]), landmarks))
            else:
                out.append(None)
        return out

    def _scan_results(self, flat: np.ndarray, jobs: Sequence[ScanJob]) -> list[list[Detection]]:
        import torch
        import torchvision

        if not jobs:
            return []
        rows = flat.reshape(len(jobs), -1, 15)
        out = []
        for job, cand in zip(jobs, rows):
            cand = cand[cand[:, 0] > self.options.score_threshold]
            if len(cand):
                order = torchvision.ops.nms(torch.from_numpy(cand[:, 1:5]).float(),
                                            torch.from_numpy(cand[:, 0]).float(),
                                            self.options.nms_threshold).numpy()
                cand = cand[order]
            sx, sy = job.part.scale
            x0, y0 = job.part.region[:2]
            scale = np.array([sx, sy])
            offset = np.array([x0, y0], dtype=np.float64)
            b = job.part.border
            found = []
            for row in cand:
                points = (row[5:15].reshape(5, 2) - b + 0.5) / scale - 0.5 + offset
                corners = (row[1:5].reshape(2, 2) - b + 0.5) / scale - 0.5 + offset
                if self._keep(points):
                    found.append(Detection(corners.reshape(4), float(row[0]), points))
            out.append(found)
        return out
