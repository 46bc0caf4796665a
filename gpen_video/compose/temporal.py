"""Temporal smoothing of what the restorer changed, per track, in aligned (crop) space.

GPEN restores each frame on its own, so detail it invents (skin texture, hair strands, eye
highlights) changes from frame to frame even when the face does not move: flicker. Smoothing
the restored *picture* over time would also wash out detail that is really there (every
recursive resampling step blurs it). So this stage smooths only the restoration's **residual**
``r = restored − source`` (``source`` is the aligned input crop), per track, in crop
coordinates:

1. the motion between this frame's and the previous frame's aligned input crops is what the
   smoothed alignment left: small (a fraction of a pixel per frame on the real clips, RESULTS.md)
   and mostly jitter. ``motion="none"`` (the default) carries the previous residual as it
   is, in crop coordinates; ``motion="translation"`` first estimates a global translation ``d``
   (Lucas–Kanade, a few Gauss–Newton steps on the luma at ``gate_size`` pixels) and shifts the
   previous residual by it (bicubic). Measured with test instruments on crops of a real face
   under alignment jitter, carrying it as it is keeps a texture fixed in crop space whole
   (GPEN's StyleGAN2 decoder makes detail that sticks to its pixel grid; shifting loses about
   half of it), keeps as much of an input-following sharpening and damps fresh noise nearly as
   well; the shift wins only on a steady drift of ≥ 1 px/frame (RESULTS.md, "B3");
2. a per-pixel trust ``w = max_weight · exp(−(e/photo_sigma)²)`` where ``e`` is the local mean
   absolute difference between this input crop and the previous one (luma, box mean, after the
   shift if any): where the input really changed — mouth, blink, occlusion, a turn — the trust
   falls and the current restoration is used;
3. the past is carried in one of two ways, per region, whichever agrees better with this
   frame's residual (local mean absolute luma difference ``e``, soft choice
   ``to_picture = e_A² / (e_A² + e_B²)``): **A** the previous smoothed residual ``R′`` (detail
   the restorer adds consistently; the input's own changes pass through untouched) or **B** the
   previous output, as a residual ``R′ + S′ − S`` (what a restorer that *removes* the input's
   per-frame noise needs: carrying only the residual would put part of that noise back);
4. ``R = r + w·(C − r)`` with ``C`` the carried residual, and the output is ``source + R``
   (clipped to ``[0, 1]``). No picture is ever resampled (with ``motion="none"``).

An unchanged face (``restored == source``) passes through bit-identical; detail the restorer adds
consistently survives (its residual agrees with the previous one); detail that changes from frame
to frame is averaged over ≈ ``(1 + w)/(1 − w)`` frames. State is dropped at track starts and at
shot cuts (the caller says when: :meth:`TemporalSmoother.reset`), and (``motion="translation"``) a
shift larger than ``max_shift`` starts the track's filter over.

Implementations (``impl=``): ``reference`` — numpy/OpenCV on ``S×S×3`` float32 HWC crops;
``torch`` — the same arithmetic in torch on ``3×S×S`` float32 tensors on any device, so on CUDA
the crops never leave the GPU (no host synchronisation either: the translation stays a device
tensor); ``auto`` — by the type of the crops. ``tests/test_temporal.py`` holds the two to each
other.

Conventions: crops are RGB in ``[0, 1]``; luma ``0.299 R + 0.587 G + 0.114 B``; the motion ``d``
satisfies ``current(x) ≈ previous(x + d)`` with pixel centres at integer coordinates; shifts
sample outside the crop by replicating the border (OpenCV ``BORDER_REPLICATE`` = torch
``padding_mode="border"``); the box mean reflects (``BORDER_REFLECT_101`` = torch ``reflect``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from gpen_video.options import TEMPORAL_MODES as MODES  # noqa: E402 - ("residual", "off")
IMPLS = ("auto", "reference", "torch")
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ResidualSettings:
    """Tuning of the residual smoother (chosen with ``benchmarks/temporal_quality.py``)."""

    max_weight: float = 0.6  # weight of the carried residual where the input did not change
    photo_sigma: float = 0.04  # input change (0–1 luma, box mean) where trust is e^-1
    gate_size: int = 128  # motion and trust are computed at at most this many pixels across
    box: int = 5  # box mean of the input change, at gate resolution (odd)
    motion: str = "none"  # none | translation: how the previous residual is carried
    iterations: int = 3  # Gauss–Newton steps of the translation estimate
    max_shift: float = 0.08  # |d| above this fraction of the crop: start the track over


def _check(mode: str, impl: str, settings: ResidualSettings) -> None:
    if mode not in MODES:
        raise ValueError(f"temporal mode {mode!r}: choose one of {', '.join(MODES)}")
    if impl not in IMPLS:
        raise ValueError(f"temporal impl {impl!r}: choose one of {', '.join(IMPLS)}")
    if settings.motion not in ("translation", "none"):
        raise ValueError(f"temporal motion {settings.motion!r}: choose translation or none")


class TemporalSmoother:
    """Residual smoothing of restored crops, one state per track id.

    Not thread-safe: one instance per pipeline, called from one thread.
    """

    def __init__(self, size: int, mode: str = "residual",
                 settings: ResidualSettings = ResidualSettings(), impl: str = "auto") -> None:
        _check(mode, impl, settings)
        self.size = int(size)
        self.mode = mode
        self.settings = settings
        self.impl = impl
        self.gate = min(self.size, settings.gate_size)
        self._states: dict[int, Any] = {}
        self._reference = _ReferenceOps(self.size, self.gate, settings)
        self._torch: Any = None

    def memory_frames(self, tolerance: float) -> int:
        """Frames after which a track's first output weighs less than ``tolerance`` in the
        current one: the filter is recursive with a weight of at most ``max_weight`` per frame
        (0 when off). Chunked renders (:mod:`gpen_video.farm.warmup`) restore this many frames
        before their range so that they start with the state a single run has."""
        w = self.settings.max_weight
        if self.mode == "off" or w <= 0.0:
            return 0
        return max(1, math.ceil(math.log(tolerance) / math.log(w)))

    def reset(self, track_id: int | None = None) -> None:
        """Forget one track (its next frame is taken as is), or every track (``None``: a cut)."""
        if track_id is None:
            self._states.clear()
        else:
            self._states.pop(track_id, None)

    def _ops(self, crop: Any) -> Any:
        use_torch = self.impl == "torch" or (self.impl == "auto" and not isinstance(crop,
                                                                                  np.ndarray))
        if not use_torch:
            if not isinstance(crop, np.ndarray):
                raise TypeError("impl='reference' takes S×S×3 numpy crops")
            return self._reference
        if self._torch is None:
            from gpen_video.compose.temporal_torch import TorchOps

            self._torch = TorchOps(self.size, self.gate, self.settings)
        return self._torch

    def __call__(self, track_id: int, source: Any, restored: Any) -> Any:
        """The smoothed crop for this track's next frame.

        Args:
            track_id: the face's track.
            source: aligned input crop: ``S×S×3`` float32 numpy (reference) or ``3×S×S`` float32
                tensor (torch), RGB in ``[0, 1]``.
            restored: the restorer's output for it, same kind and layout.

        Returns:
            ``restored`` itself on a track's first frame (and with mode ``off``), else a new crop
            of the same kind.
        """
        if self.mode == "off":
            return restored
        ops = self._ops(source)
        luma = ops.luma(source)
        residual = restored - source
        state = self._states.get(track_id)
        if state is None or state[3] is not ops:
            self._states[track_id] = (luma, source, residual, ops)
            return restored
        prev_luma, prev_source, prev_residual, _ = state
        carried, weight, too_far = ops.carry(luma, prev_luma, source, prev_source, residual,
                                             prev_residual)
        smoothed = ops.mix(residual, carried, weight, too_far)
        self._states[track_id] = (luma, source, smoothed, ops)
        return ops.output(source, smoothed)


class _ReferenceOps:
    """numpy/OpenCV arithmetic of :class:`TemporalSmoother` on ``S×S×3`` float32 crops."""

    def __init__(self, size: int, gate: int, settings: ResidualSettings) -> None:
        self.size, self.gate, self.settings = size, gate, settings

    def luma(self, crop: np.ndarray) -> np.ndarray:
        y = crop[..., 0] * _LUMA[0] + crop[..., 1] * _LUMA[1] + crop[..., 2] * _LUMA[2]
        if self.gate != self.size:
            y = cv2.resize(y, (self.gate, self.gate), interpolation=cv2.INTER_AREA)
        return y.astype(np.float32, copy=False)

    @staticmethod
    def _shift(image: np.ndarray, d: np.ndarray, flags: int) -> np.ndarray:
        m = np.array([[1.0, 0.0, d[0]], [0.0, 1.0, d[1]]])
        return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]),
                              flags=flags | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)

    def translation(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """``d`` (gate pixels) with ``cur(x) ≈ prev(x + d)``: Gauss–Newton on the interior."""
        d = np.zeros(2, np.float64)
        for _ in range(self.settings.iterations):
            warped = self._shift(prev, d, cv2.INTER_LINEAR)
            gx = (warped[1:-1, 2:] - warped[1:-1, :-2]) * 0.5
            gy = (warped[2:, 1:-1] - warped[:-2, 1:-1]) * 0.5
            e = warped[1:-1, 1:-1] - cur[1:-1, 1:-1]
            a, b, c = float((gx * gx).sum()), float((gx * gy).sum()), float((gy * gy).sum())
            u, v = float((gx * e).sum()), float((gy * e).sum())
            a, c = a + 1e-6, c + 1e-6
            det = a * c - b * b
            d -= np.array([(c * u - b * v) / det, (a * v - b * u) / det])
        return d

    def carry(self, cur: np.ndarray, prev: np.ndarray, source: np.ndarray,
              prev_source: np.ndarray, residual: np.ndarray, prev_residual: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, bool]:
        """The residual carried onto this frame (S×S×3), the trust (S×S), and whether the
        motion was too large to trust at all."""
        s = self.settings
        d = self.translation(cur, prev) if s.motion == "translation" else np.zeros(2)
        too_far = bool(np.hypot(*d) > s.max_shift * self.gate)
        prev_shifted = self._shift(prev, d, cv2.INTER_LINEAR) if d.any() else prev
        change = self._box(np.abs(cur - prev_shifted))
        w = (s.max_weight * np.exp(-np.square(change / s.photo_sigma))).astype(np.float32)
        if d.any():
            k = self.size / self.gate
            prev_residual = self._shift(prev_residual, d * k, cv2.INTER_CUBIC)
            prev_source = self._shift(prev_source, d * k, cv2.INTER_CUBIC)
        # two ways to carry the past: the residual (A = R′) or the picture (B = R′ + S′ − S,
        # i.e. the previous output); per region, the one that agrees better with this frame
        e_a = self.luma(prev_residual - residual)
        e_b = self._box(np.abs(e_a + prev_shifted - cur))
        e_a = self._box(np.abs(e_a))
        total = e_a * e_a + e_b * e_b
        to_b = np.divide(e_a * e_a, total, out=np.zeros_like(total), where=total > 0)
        if self.gate != self.size:
            w = cv2.resize(w, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            to_b = cv2.resize(to_b, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        carried = prev_residual + (prev_source - source) * to_b[:, :, None]
        return carried, w, too_far

    def _box(self, image: np.ndarray) -> np.ndarray:
        b = self.settings.box
        return cv2.blur(image, (b, b), borderType=cv2.BORDER_REFLECT_101)

    @staticmethod
    def mix(residual: np.ndarray, carried: np.ndarray, weight: np.ndarray,
            too_far: bool) -> np.ndarray:
        if too_far:
            return residual
        return residual + (carried - residual) * weight[:, :, None]

    @staticmethod
    def output(source: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
        out = source + smoothed
        return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
