"""Where the pipeline's face geometry runs: on host frames with OpenCV, or on a torch device.

:func:`gpen_video.pipeline.run` crops faces, hands them to the restorer and pastes the results
back through one small interface with two implementations, chosen by ``BlendOptions.geometry``
(``--geometry``):

* ``cpu`` — :class:`CpuFaces`: :func:`gpen_video.blend.crop_face` per face and
  :class:`gpen_video.blend.Blender` per frame, on the decoded numpy frames. The reference path.
* ``torch`` — :class:`TorchFaces`: :class:`gpen_video.gpu_geometry.GpuGeometry` on the
  restorer's torch device. A frame with faces is uploaded once (frames without faces never leave
  the host); every crop of a restorer batch comes from **one** batched sampling call over the
  batch's frames; the restored crops stay on the device, are warped back over each face's region
  and composited there; only the finished frame comes back (one download per frame with faces).
* ``auto`` — ``torch`` when the restorer runs on a CUDA device (and torch sees it), ``cpu``
  otherwise (on the CPU the OpenCV path is the faster one).

Both paths share the mask, the regions, the interpolation and the alpha rule
(:mod:`gpen_video.blend`); the torch path is tested against the OpenCV one
(``tests/test_gpu_geometry.py``, ``tests/test_pipeline_geometry.py``).

What else comes back to the host on the ``torch`` path, and why: ``--temporal flow`` computes
optical flow with OpenCV's DIS on the aligned *input* crops and warps the previous output with
``cv2.remap``, and ``--color-match`` takes numpy statistics of both crops — CPU code. When either
is on, each face's input crop and restored crop (``S×S×3`` float32 each, 3 MiB at 512 px) are
downloaded (:meth:`TorchFaces.to_host`, one transfer per frame) and the adjusted crop goes back
up before the paste (:meth:`TorchFaces.from_host`); frames still stay on the device. With
``--temporal off`` and no colour matching nothing but the finished frames comes back.

Items: a face's crop is an ``S×S×3`` float32 numpy array (``cpu``) or a ``3×S×S`` float32 tensor
on the device (``torch``), RGB in ``[0, 1]``; :meth:`to_host`/:meth:`from_host` convert lists of
them. A frame "handle" is what :meth:`frame` returns: the numpy image itself, or a ``1×H×W×3``
tensor on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gpen_video.blend import Blender, MaskShape, Paste, crop_face, to_hwc, to_nchw
from gpen_video.errors import BackendUnavailable, UsageError

GEOMETRIES = ("auto", "cpu", "torch")


class CpuFaces:
    """Face geometry on host frames with OpenCV (:mod:`gpen_video.blend`)."""

    name = "cpu"
    device = "cpu"

    def __init__(self, size: int, strength: float = 1.0, shape: MaskShape | None = None) -> None:
        self.size = int(size)
        self.blender = Blender(self.size, strength, shape or MaskShape())
        self.mask = self.blender.mask

    def frame(self, image: np.ndarray) -> np.ndarray:
        """The frame as :meth:`crop` and :meth:`paste` want it: the image itself."""
        return image

    def crop(self, frames: Sequence[np.ndarray], matrices: Sequence[np.ndarray]) -> list:
        """The aligned crops of ``N`` faces (face ``k`` in ``frames[k]``), ``S×S×3`` each."""
        return [crop_face(f, m, self.size) for f, m in zip(frames, matrices, strict=True)]

    def restore(self, restorer: Any, crops: list) -> list:
        """One ``restorer.restore`` call for all ``crops``; the restored faces, same kind."""
        return list(to_hwc(restorer.restore(to_nchw(np.stack(crops)))))

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


class TorchFaces:
    """Face geometry on a torch device (:class:`gpen_video.gpu_geometry.GpuGeometry`)."""

    name = "torch"

    def __init__(self, size: int, device: str, strength: float = 1.0,
                 shape: MaskShape | None = None) -> None:
        from gpen_video.gpu_geometry import GpuGeometry

        self.size = int(size)
        self.geo = GpuGeometry(self.size, device, strength, shape)
        self.device = str(self.geo.device)
        self.mask = self.geo.blender.mask

    def frame(self, image: np.ndarray) -> Any:
        """Upload one frame: a ``1×H×W×3`` tensor on the device. On the CPU it shares the
        image's memory when that is writeable (the paste then writes into it, as ``cpu`` does)."""
        import torch

        if self.geo.device.type == "cpu":
            host = image if image.flags.writeable else image.copy()
            return torch.from_numpy(np.ascontiguousarray(host))[None]
        from gpen_video.gpu_geometry import frames_to_tensor

        return frames_to_tensor(image, self.geo.device)

    def crop(self, frames: Sequence[Any], matrices: Sequence[np.ndarray]) -> list:
        """The aligned crops of ``N`` faces (face ``k`` in ``frames[k]``): views of one
        ``N×3×S×S`` tensor made by a single sampling call over the distinct frames."""
        import torch

        order: dict[int, int] = {}
        distinct: list[Any] = []
        index = []
        for f in frames:
            if id(f) not in order:
                order[id(f)] = len(distinct)
                distinct.append(f)
            index.append(order[id(f)])
        stacked = distinct[0] if len(distinct) == 1 else torch.cat(distinct)
        return list(self.geo.crops(stacked, index, np.stack(matrices)))

    def restore(self, restorer: Any, crops: list) -> list:
        """One ``restorer.restore`` call on the device batch; restored faces stay on the device."""
        import torch

        out = restorer.restore(torch.stack(crops))
        return list(out.to(self.geo.device, torch.float32))

    def to_host(self, items: list) -> list[np.ndarray]:
        """``S×S×3`` float32 numpy crops (one download for the list)."""
        import torch

        if not items:
            return []
        return list(to_hwc(torch.stack(items).cpu().numpy()))

    def from_host(self, crops: list[np.ndarray]) -> list:
        """Back to the device (one upload for the list)."""
        import torch

        if not crops:
            return []
        return list(torch.from_numpy(to_nchw(np.stack(crops))).to(self.geo.device))

    def paste(self, image: np.ndarray, frame: Any, items: list, matrices: Sequence[np.ndarray],
              alphas: Sequence[float]) -> np.ndarray:
        """Composite the faces into the uploaded ``frame`` on the device; the finished frame
        back as numpy (``image`` itself, unchanged, when there is nothing to paste)."""
        import torch

        if not items:
            return image
        self.geo.paste(frame, torch.stack(items), [0] * len(items), np.stack(matrices),
                       list(alphas))
        return frame[0].cpu().numpy()


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


def create_geometry(choice: str, size: int, restorer_device: str, strength: float = 1.0,
                    shape: MaskShape | None = None) -> tuple[CpuFaces | TorchFaces, str]:
    """The face geometry for ``size``-px crops (:func:`choose_geometry`) and one log line
    saying which and why. ``torch`` runs on the restorer's device.

    Raises: see :func:`choose_geometry`.
    """
    device = str(restorer_device or "cpu")
    cuda = False
    if device.startswith("cuda"):
        import torch

        cuda = torch.cuda.is_available()
    name, why = choose_geometry(choice, device, cuda)
    if name == "cpu":
        return CpuFaces(size, strength, shape), f"geometry: OpenCV on the CPU ({why})"
    faces = TorchFaces(size, device, strength, shape)
    return faces, f"geometry: torch on {faces.device} ({why})"
