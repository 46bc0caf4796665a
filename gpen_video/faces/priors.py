"""RetinaFace's raw outputs decoded into pixels of the image the network saw.

The network predicts, for every prior (anchor) of an image size, offsets in units of the
prior's size: box centre and landmarks ``prior centre + offset · variance[0] · prior size``,
box size ``prior size · exp(offset · variance[1])``. facexlib's ``batched_decode`` and
``batched_decode_landm`` are the reference (``tests/test_priors.py``); they work in unit
coordinates, on strided slices, one landmark at a time, and the caller scales to pixels. Here the
priors, the variances and the image size are folded into per-prior tensors once per image size,
so decoding is one fused multiply-add per output, and a caller that needs only some priors'
boxes (the window passes' best face, a scan's top candidates) decodes only those: on the CPU the
reference's decoding was a visible part of a window round (measured 2026-11-28:
the git history of benchmarks/RESULTS.md, "Decoding only what is used").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Priors:
    """The priors of one image size (or a selection of them), in that image's pixels.

    ``centre``, ``step`` and ``size`` are ``B×P×2`` float32 tensors on one device (``B`` = 1 for
    an image size's full set, broadcast over a batch; ``N`` after :meth:`take`)."""

    centre: Any  # prior centres, px
    step: Any  # the unit of the centre and landmark offsets: variance[0] · prior size, px
    size: Any  # prior sizes (w, h), px
    log_unit: float  # the unit of the log-size offsets: variance[1]

    @classmethod
    def for_image(cls, cfg: dict, height: int, width: int,
                  to_device: Callable[[np.ndarray], Any]) -> "Priors":
        """The priors facexlib's ``PriorBox`` lays over a ``height×width`` image, uploaded with
        ``to_device`` (a float32 numpy array → a tensor on the device)."""
        from facexlib.detection.retinaface_utils import PriorBox

        unit = PriorBox(cfg, image_size=(height, width)).forward().double().numpy()  # P×4
        pixels = np.array([width, height], np.float64)
        centre = unit[:, :2] * pixels
        size = unit[:, 2:] * pixels
        step = size * float(cfg["variance"][0])

        def upload(a: np.ndarray):
            return to_device(np.ascontiguousarray(a[None], dtype=np.float32))

        return cls(upload(centre), upload(step), upload(size), float(cfg["variance"][1]))

    def take(self, index) -> "Priors":
        """The priors at ``index`` (an ``N×K`` integer tensor) of a full set: ``N×K×2`` each."""
        return Priors(self.centre[0][index], self.step[0][index], self.size[0][index],
                      self.log_unit)

    def landmarks(self, offsets):
        """``N×P×10`` landmark offsets → ``N×P×5×2`` landmarks, px."""
        import torch

        n = offsets.shape[0]
        return torch.addcmul(self.centre[:, :, None], offsets.reshape(n, -1, 5, 2),
                             self.step[:, :, None])

    def boxes(self, offsets):
        """``N×P×4`` box offsets → ``N×P×4`` boxes ``(x0, y0, x1, y1)``, px."""
        import torch

        centre = torch.addcmul(self.centre, offsets[..., :2], self.step)
        half = self.size * torch.exp(offsets[..., 2:] * self.log_unit) * 0.5
        return torch.cat([centre - half, centre + half], dim=-1)
