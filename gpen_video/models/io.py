"""Pixels ↔ GPEN tensors: the only place that knows the model's value convention.

Crops (what the pipeline holds): N×H×W×3 (or H×W×3), **RGB**, channels last, as

* ``uint8``  — 0 … 255 (8-bit sources),
* ``uint16`` — 0 … 65535 (sources above 8 bits, processed at 16 bits),
* ``float16/32/64`` — 0.0 … 1.0.

Model tensors: N×3×H×W float, RGB, range [-1, 1], i.e. ``(x / max − 0.5) / 0.5``, the official
inference convention (the official code reads BGR with OpenCV and flips to RGB; our frames are
RGB already, so no channel flip happens here).

Back to pixels: ``out × 0.5 + 0.5``, clipped to [0, 1], then scaled to the integer range and
**rounded to nearest** (ties to even). The official code truncates (``astype(np.uint8)``), which
darkens every pixel by half a level on average; rounding is the unbiased choice. The difference
is at most one code value (8-bit: 1/255) and is deliberate.

Both functions take numpy arrays or torch tensors and return torch tensors on the device given
(``to_model``) or on the input's device (``from_model``); call ``.cpu().numpy()`` for numpy.

The restorers' batches (:class:`~gpen_video.backends.base.Restorer`: N×3×S×S float32 in [0, 1])
go through :func:`unit_to_model` / :func:`model_to_unit` — ``x·2 − 1`` in, ``clip(y·0.5 + 0.5,
0, 1)`` out — with the ``_`` variants working in place on a backend's own buffers. Every
backend (torch, ONNX Runtime, the TensorRT runner) calls these; none writes the mapping itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_INT_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0}
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _as_tensor(pixels: np.ndarray | Tensor) -> Tensor:
    if isinstance(pixels, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(pixels))
    if isinstance(pixels, Tensor):
        return pixels
    raise TypeError(f"expected a numpy array or torch tensor of pixels, got {type(pixels).__name__}")


def unit_to_model(batch: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """``batch·2 − 1``: a restorer batch in [0, 1] → the network's [-1, 1]; a new array or
    tensor of the same kind and dtype (``batch`` is the caller's and stays as it is)."""
    if isinstance(batch, np.ndarray):
        return batch * np.float32(2.0) - np.float32(1.0)
    return batch * 2.0 - 1.0


def unit_to_model_(batch: Tensor) -> Tensor:
    """:func:`unit_to_model` in place (a backend's own buffer); returns ``batch``."""
    return batch.mul_(2.0).sub_(1.0)


def model_to_unit(output: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """``clip(output·0.5 + 0.5, 0, 1)`` in float32: the network's raw RGB → a restorer batch in
    [0, 1]; a new array or tensor of ``output``'s kind."""
    if isinstance(output, np.ndarray):
        out = output * np.float32(0.5) + np.float32(0.5)
        np.clip(out, 0.0, 1.0, out=out)
        return out.astype(np.float32, copy=False)
    return (output.float() * 0.5 + 0.5).clamp_(0.0, 1.0)


def model_to_unit_(output: Tensor) -> Tensor:
    """:func:`model_to_unit` in place on a float32 tensor (a backend's own buffer)."""
    return output.mul_(0.5).add_(0.5).clamp_(0.0, 1.0)


def to_model(
    crops: np.ndarray | Tensor,  # N×H×W×3 or H×W×3, RGB, uint8 | uint16 | float in [0, 1]
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:  # N×3×H×W, RGB, [-1, 1]
    """Convert RGB crops to GPEN's input: N×3×H×W, RGB, ``(x/max − 0.5)/0.5`` in [-1, 1].

    Args:
        crops: aligned face crops, channels last, RGB; a single H×W×3 crop gets N = 1.
        device: where the result lives (default: where ``crops`` are).
        dtype: floating dtype of the result (the model's dtype).

    Raises:
        ValueError: not H×W×3 / N×H×W×3, or an unsupported dtype (the message names the
            supported ones).
    """
    pixels = _as_tensor(crops)
    if pixels.ndim == 3:
        pixels = pixels[None]
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected RGB crops N×H×W×3 (channels last), got shape "
                         f"{tuple(pixels.shape)}")
    if pixels.dtype in _INT_MAX:
        scale = 2.0 / _INT_MAX[pixels.dtype]
    elif pixels.dtype in _FLOATS:
        scale = 2.0
    else:
        raise ValueError(f"crops of dtype {pixels.dtype} are not supported: use uint8 (0-255), "
                         "uint16 (0-65535) or float in [0, 1]")
    pixels = pixels.to(device=device if device is not None else pixels.device)
    # Compute in fp32 at least (uint16 needs it), then cast to the model's dtype.
    work = torch.float64 if pixels.dtype == torch.float64 else torch.float32
    x = pixels.permute(0, 3, 1, 2).to(work) * scale - 1.0
    return x.to(dtype).contiguous()


def from_model(
    output: Tensor,  # N×3×H×W, RGB, nominally [-1, 1], unclamped
    dtype: torch.dtype = torch.uint8,
) -> Tensor:  # N×H×W×3, RGB
    """Convert GPEN's raw output to RGB crops, channels last.

    ``out × 0.5 + 0.5`` clipped to [0, 1]; for ``uint8``/``uint16`` scaled to 255/65535 and
    rounded to nearest (the official code truncates: see the module docstring); for a float
    dtype returned in [0, 1] without rounding.

    Raises:
        ValueError: not N×3×H×W, or an unsupported ``dtype``.
    """
    if output.ndim != 4 or output.shape[1] != 3:
        raise ValueError(f"expected model output N×3×H×W, got shape {tuple(output.shape)}")
    unit = model_to_unit(output).permute(0, 2, 3, 1)
    if dtype in _INT_MAX:
        return torch.round(unit * _INT_MAX[dtype]).to(dtype).contiguous()
    if dtype in _FLOATS:
        return unit.to(dtype).contiguous()
    raise ValueError(f"cannot return pixels as {dtype}: use torch.uint8, torch.uint16 or a float")
