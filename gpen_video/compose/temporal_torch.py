"""The torch arithmetic of :class:`gpen_video.compose.temporal.TemporalSmoother` (``impl="torch"``).

The same steps as the numpy/OpenCV reference (:class:`gpen_video.compose.temporal._ReferenceOps`), on
``3×S×S`` float32 RGB tensors in ``[0, 1]`` on any device, written so that nothing synchronises
with the host: the translation estimate, the "too far" decision and the mix stay device tensors.
Mapping of the OpenCV calls: ``INTER_AREA`` downscale by an integer factor = ``avg_pool2d``;
``warpAffine(…, WARP_INVERSE_MAP, BORDER_REPLICATE)`` by a translation = ``grid_sample`` with
``align_corners=False`` and ``padding_mode="border"`` (bilinear / bicubic, a = −0.75 both);
``blur(BORDER_REFLECT_101)`` = ``reflect`` padding + ``avg_pool2d``; ``resize(INTER_LINEAR)``
upscale = ``interpolate(bilinear, align_corners=False)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from typing import Any

_LUMA = (0.299, 0.587, 0.114)  # as gpen_video.compose.temporal's (no import: no cycle)


class TorchOps:
    """Per-crop operations on ``3×S×S`` tensors; see :mod:`gpen_video.compose.temporal`."""

    def __init__(self, size: int, gate: int, settings: Any) -> None:
        self.size, self.gate, self.settings = size, gate, settings

    def luma(self, crop: Tensor) -> Tensor:
        y = crop[0] * _LUMA[0] + crop[1] * _LUMA[1] + crop[2] * _LUMA[2]
        if self.gate != self.size:
            factor = self.size // self.gate
            y = F.avg_pool2d(y[None, None], factor)[0, 0]
        return y

    @staticmethod
    def _shift(image: Tensor, d: Tensor, mode: str) -> Tensor:
        """``image`` (C×H×W) sampled at ``x + d`` (pixels), border replicated."""
        c, h, w = image.shape
        theta = torch.zeros(1, 2, 3, dtype=torch.float32, device=image.device)
        theta[0, 0, 0] = 1.0
        theta[0, 1, 1] = 1.0
        theta[0, 0, 2] = d[0] * (2.0 / w)
        theta[0, 1, 2] = d[1] * (2.0 / h)
        grid = F.affine_grid(theta, [1, c, h, w], align_corners=False)
        return F.grid_sample(image[None], grid, mode=mode, padding_mode="border",
                             align_corners=False)[0]

    def translation(self, cur: Tensor, prev: Tensor) -> Tensor:
        """``d`` (gate pixels, a 2-tensor on the device) with ``cur(x) ≈ prev(x + d)``."""
        d = torch.zeros(2, dtype=torch.float64, device=cur.device)
        for _ in range(self.settings.iterations):
            warped = self._shift(prev[None], d.float(), "bilinear")[0]
            gx = (warped[1:-1, 2:] - warped[1:-1, :-2]) * 0.5
            gy = (warped[2:, 1:-1] - warped[:-2, 1:-1]) * 0.5
            e = warped[1:-1, 1:-1] - cur[1:-1, 1:-1]
            sums = torch.stack([(gx * gx).sum(), (gx * gy).sum(), (gy * gy).sum(),
                                (gx * e).sum(), (gy * e).sum()]).double()
            a, b, c, u, v = sums.unbind()
            a, c = a + 1e-6, c + 1e-6
            det = a * c - b * b
            d = d - torch.stack([(c * u - b * v) / det, (a * v - b * u) / det])
        return d

    def carry(self, cur: Tensor, prev: Tensor, source: Tensor, prev_source: Tensor,
              residual: Tensor, prev_residual: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s = self.settings
        if s.motion == "translation":
            d = self.translation(cur, prev)
            prev_shifted = self._shift(prev[None], d.float(), "bilinear")[0]
        else:
            d = torch.zeros(2, dtype=torch.float64, device=cur.device)
            prev_shifted = prev
        too_far = torch.linalg.vector_norm(d) > s.max_shift * self.gate
        w = s.max_weight * torch.exp(-torch.square(self._box((cur - prev_shifted).abs())
                                                   / s.photo_sigma))
        if s.motion == "translation":
            dk = (d * (self.size / self.gate)).float()
            prev_residual = self._shift(prev_residual, dk, "bicubic")
            prev_source = self._shift(prev_source, dk, "bicubic")
        e_a = self.luma(prev_residual - residual)
        e_b = self._box((e_a + prev_shifted - cur).abs())
        e_a = self._box(e_a.abs())
        total = e_a * e_a + e_b * e_b
        to_b = torch.where(total > 0, e_a * e_a / torch.where(total > 0, total, 1.0),
                           torch.zeros_like(total))
        if self.gate != self.size:
            w, to_b = (F.interpolate(x[None, None], size=(self.size, self.size),
                                     mode="bilinear", align_corners=False)[0, 0]
                       for x in (w, to_b))
        carried = prev_residual + (prev_source - source) * to_b
        return carried, w, too_far

    def _box(self, image: Tensor) -> Tensor:
        pad = self.settings.box // 2
        padded = F.pad(image[None, None], (pad, pad, pad, pad), mode="reflect")
        return F.avg_pool2d(padded, self.settings.box, stride=1)[0, 0]

    @staticmethod
    def mix(residual: Tensor, carried: Tensor, weight: Tensor, too_far: Tensor) -> Tensor:
        weight = torch.where(too_far, torch.zeros_like(weight), weight)
        return residual + (carried - residual) * weight

    @staticmethod
    def output(source: Tensor, smoothed: Tensor) -> Tensor:
        return (source + smoothed).clamp_(0.0, 1.0)
