"""The previous ``--temporal flow`` smoother, kept only for ``benchmarks/temporal_quality.py``'s
comparison (not a product mode): flow-guided recursive smoothing of restored *outputs*.

Original description:

GPEN restores each frame on its own, so fine detail it invents (skin texture, hair strands, eye
highlights) changes from frame to frame even when the face does not move: flicker. With
``--temporal flow`` each track keeps its previous *output* crop; for the current frame it

1. computes optical flow (OpenCV DIS) between the current and previous aligned *input* crops —
   inputs, not restored outputs, so the network's own flicker cannot steer the flow;
2. warps the previous output along that flow onto the current crop;
3. trusts the warped pixel where the flow is reliable: forward–backward consistent (the two flows
   cancel) and photometrically right (the warped previous input matches the current input);
4. outputs ``(1 − w)·restored + w·warped_previous``, ``w = w_max · c_fb · c_photo`` per pixel.

It is a recursive filter along motion trajectories: on a still face it averages ≈
``(1 + w_max)/(1 − w_max)`` frames of restored detail; where the flow fails (occlusion, fast
motion, a blink) it falls back to the current restoration. State is dropped at track starts and
at shot cuts (the caller says when: :meth:`TemporalSmoother.reset`).

Conventions: crops are ``S×S×3`` float32 RGB in ``[0, 1]`` (HWC). Flow is computed on the
luma of the crop downscaled to at most ``flow_size`` pixels and scaled back up. Flow vectors
``f`` satisfy ``current(x) ≈ previous(x + f(x))`` with pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MODES = ("flow", "off")


@dataclass(frozen=True)
class FlowSettings:
    """Tuning of the flow smoother (defaults measured with ``benchmarks/flicker.py``)."""

    max_weight: float = 0.6  # w_max: weight of the warped previous output where flow is reliable
    fb_sigma: float = 1.0  # forward–backward error (px, at flow resolution) where trust is e^-1
    photo_sigma: float = 0.05  # photometric residual (0–1 luma, 5×5 mean) where trust is e^-1
    flow_size: int = 256  # flow is computed at at most this many pixels across
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST


def _luma_u8(crop: np.ndarray, size: int) -> np.ndarray:
    rgb = np.clip(crop * 255.0 + 0.5, 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if gray.shape[0] != size:
        gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return gray


class _TrackState:
    __slots__ = ("gray", "output")

    def __init__(self, gray: np.ndarray, output: np.ndarray) -> None:
        self.gray = gray
        self.output = output


class TemporalSmoother:
    """Flow-guided recursive smoothing of restored crops, one state per track id.

    Not thread-safe: one instance per pipeline, called from one thread.
    """

    def __init__(self, size: int, mode: str = "flow", settings: FlowSettings = FlowSettings()):
        if mode not in MODES:
            raise ValueError(f"temporal mode {mode!r}: choose one of {', '.join(MODES)}")
        self.size = size
        self.mode = mode
        self.settings = settings
        self.flow_size = min(size, settings.flow_size)
        self._states: dict[int, _TrackState] = {}
        self._dis = cv2.DISOpticalFlow_create(settings.preset) if mode == "flow" else None
        grid = np.arange(size, dtype=np.float32)
        self._gx, self._gy = np.meshgrid(grid, grid)
        fgrid = np.arange(self.flow_size, dtype=np.float32)
        self._fgx, self._fgy = np.meshgrid(fgrid, fgrid)

    def reset(self, track_id: int | None = None) -> None:
        """Forget one track (its next frame is taken as is), or every track (``None``: a cut)."""
        if track_id is None:
            self._states.clear()
        else:
            self._states.pop(track_id, None)

    def __call__(self, track_id: int, source: np.ndarray, restored: np.ndarray) -> np.ndarray:
        """The smoothed crop for this track's next frame.

        Args:
            track_id: the face's track.
            source: aligned input crop, ``S×S×3`` float32 RGB in ``[0, 1]``.
            restored: the restorer's output for it, same layout.
        """
        if self.mode == "off":
            return restored
        gray = _luma_u8(source, self.flow_size)
        state = self._states.get(track_id)
        if state is None:
            self._states[track_id] = _TrackState(gray, restored)
            return restored
        weight, flow = self._weights(gray, state.gray)
        out = self._blend(restored, state.output, flow, weight)
        state.gray, state.output = gray, out
        return out

    def _weights(self, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        fwd = self._dis.calc(cur, prev, None)  # cur(x) ≈ prev(x + fwd(x))
        bwd = self._dis.calc(prev, cur, None)  # prev(y) ≈ cur(y + bwd(y))
        mx, my = self._fgx + fwd[..., 0], self._fgy + fwd[..., 1]
        bwd_at = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fb = np.sqrt(((fwd + bwd_at) ** 2).sum(axis=2))
        prev_warped = cv2.remap(prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        resid = np.abs(cur.astype(np.float32) - prev_warped.astype(np.float32)) / 255.0
        resid = cv2.blur(resid, (5, 5))
        outside = (mx < 0) | (my < 0) | (mx > self.flow_size - 1) | (my > self.flow_size - 1)
        w = s.max_weight * np.exp(-((fb / s.fb_sigma) ** 2) - (resid / s.photo_sigma) ** 2)
        w[outside] = 0.0
        return w.astype(np.float32), fwd

    def _blend(self, restored: np.ndarray, prev_out: np.ndarray, flow: np.ndarray,
               weight: np.ndarray) -> np.ndarray:
        if self.flow_size != self.size:
            k = self.size / self.flow_size
            flow = cv2.resize(flow, (self.size, self.size), interpolation=cv2.INTER_LINEAR) * k
            weight = cv2.resize(weight, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        warped = cv2.remap(prev_out, self._gx + flow[..., 0], self._gy + flow[..., 1],
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        w = weight[:, :, None]
        return (restored + (warped - restored) * w).astype(np.float32, copy=False)
