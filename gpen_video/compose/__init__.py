"""Compose: restored faces back into their frames — crop, paste, colour match, temporal smoothing.

Two implementations of the crop/paste geometry sit behind one protocol, :class:`FaceGeometry`,
chosen by one entry, :func:`create_geometry` (``impl`` = ``BlendOptions.geometry``,
``--geometry``):

* ``cpu`` — :class:`~gpen_video.compose.reference.CpuFaces`: OpenCV on the decoded numpy frames.
  The reference path: the oracle the torch path is tested against.
* ``torch`` — :class:`~gpen_video.compose.torch_impl.TorchFaces` on the restorer's torch device.
  A frame with faces is uploaded once (frames without faces never leave the host); every crop of
  a restorer batch comes from one batched sampling call; restored crops stay on the device, are
  warped back over each face's region and composited there; only the finished frame comes back.
* ``auto`` — ``torch`` when the restorer runs on a CUDA device torch sees, else ``cpu`` (on the
  CPU the OpenCV path is the faster one).

Modules: :mod:`.mask` (the paste mask, its coverage rule, face regions, the interpolation — what
both paths share), :mod:`.reference`, :mod:`.torch_impl`, :mod:`.colour` (per-track colour
matching), :mod:`.temporal` (per-track temporal smoothing of restored crops).

Convention (every function of this package that touches geometry follows it)::

    frame:  H×W×3 RGB, uint8 (8-bit sources) or uint16 (deeper sources, full 16-bit scale);
            numpy on the cpu path, a 1×H×W×3 (T×H×W×3) tensor on the torch path
    crop:   S×S×3 float32 RGB in [0, 1] (numpy, HWC) on the cpu path,
            3×S×S float32 RGB in [0, 1] (tensor, CHW) on the torch path
    matrix: 2×3 float64, frame (x, y) → crop (u, v); pixel centres at integer coordinates,
            so crop[v, u] = frame(M⁻¹·(u, v)); pasting samples the crop at M·(x, y) for each
            frame pixel of the face's region — the exact inverse, no align_corners question
    interpolation: bicubic (mask.INTERPOLATION), both warps, both paths; results clipped to the
            valid range (bicubic overshoots); crops read outside the frame as reflect-101,
            pastes read outside the crop as 0
    mask:   built once in crop space, exactly 0 on a margin along the crop border; only pixels
            with alpha > 0 are written, every other pixel keeps its exact input value

Why bicubic rather than bilinear: RESULTS.md, "Paste geometry".

What comes back to the host on the ``torch`` path: colour matching is CPU code today, so when
it is on each face's input and restored crops are downloaded (:meth:`FaceGeometry.to_host`, one
transfer per frame) and the adjusted crops go back up (:meth:`FaceGeometry.from_host`); frames
stay on the device. Temporal smoothing (:mod:`.temporal`) runs in torch on the device crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from gpen_video.errors import BackendUnavailable, UsageError

GEOMETRIES = ("auto", "cpu", "torch")


class FaceGeometry(Protocol):
    """Crop, restore and paste on one device. Items (crops, restored crops) and frame handles
    are numpy on the ``cpu`` path and tensors on the ``torch`` path (see the Convention)."""

    name: str  # "cpu" | "torch"
    device: str  # where frames and crops live
    size: int  # crop side S
    mask: np.ndarray  # S×S float32 paste alpha in crop space
    lane: Any  # gpen_video.device.DeviceLane: streams, events, counted host syncs

    def frame(self, image: np.ndarray) -> Any:
        """The frame as :meth:`crop` and :meth:`paste` want it (uploaded once on torch)."""

    def crop(self, frames: Sequence[Any], matrices: Sequence[np.ndarray]) -> list:
        """The aligned crops of ``N`` faces (face ``k`` in ``frames[k]``)."""

    def restore(self, restorer: Any, crops: list) -> list:
        """One ``restorer.restore`` call for all ``crops``; the restored faces, same kind."""

    def mark(self) -> Any:
        """A handle (a CUDA event, or None) for the work queued so far by the restore stage."""

    def receive(self, events: list, tensors: list) -> None:
        """Before compositing: wait (on the device) for ``events``, take over ``tensors``."""

    def to_host(self, items: list) -> list[np.ndarray]:
        """``S×S×3`` float32 numpy crops."""

    def from_host(self, crops: list[np.ndarray]) -> list:
        """Numpy crops back to this path's kind."""

    def paste(self, image: np.ndarray, frame: Any, items: list, matrices: Sequence[np.ndarray],
              alphas: Sequence[float]) -> np.ndarray:
        """Composite the faces; the finished frame as numpy."""


def choose_geometry(choice: str, restorer_device: str, cuda_available: bool
                    ) -> tuple[str, str]:
    """``(cpu|torch, why)`` for ``--geometry choice`` and a restorer on ``restorer_device``.

    ``auto``: ``torch`` when the restorer is on a CUDA device torch can see, else ``cpu``.

    Raises:
        UsageError: unknown choice.
        BackendUnavailable: ``torch`` asked for on a CUDA device torch cannot see.
    """
    if choice not in GEOMETRIES:
        raise UsageError(f"--geometry {choice!r}: choose {', '.join(GEOMETRIES)}")
    device = str(restorer_device or "cpu")
    on_cuda = device.startswith("cuda")
    if on_cuda and not cuda_available:
        if choice == "torch":
            raise BackendUnavailable(f"--geometry torch: the restorer runs on {device} but "
                                     "torch sees no CUDA GPU; use --geometry cpu")
        on_cuda = False
    if choice == "cpu":
        return "cpu", "--geometry cpu"
    if choice == "torch":
        return "torch", "--geometry torch"
    if on_cuda:
        return "torch", f"--geometry auto: the restorer runs on {device}"
    return "cpu", f"--geometry auto: the restorer runs on {device}"


def create_geometry(impl: str, size: int, restorer_device: str, strength: float = 1.0,
                    shape: Any = None) -> tuple[FaceGeometry, str]:
    """The face geometry ``impl`` (auto | cpu | torch, :func:`choose_geometry`) for ``size``-px
    crops, and one log line saying which and why. ``torch`` runs on the restorer's device.

    Raises: see :func:`choose_geometry`.
    """
    device = str(restorer_device or "cpu")
    cuda = False
    if device.startswith("cuda"):
        import torch

        cuda = torch.cuda.is_available()
    name, why = choose_geometry(impl, device, cuda)
    if name == "cpu":
        from gpen_video.compose.reference import CpuFaces

        return CpuFaces(size, strength, shape), f"geometry: OpenCV on the CPU ({why})"
    from gpen_video.compose.torch_impl import TorchFaces

    faces = TorchFaces(size, device, strength, shape)
    return faces, f"geometry: torch on {faces.device} ({why})"
