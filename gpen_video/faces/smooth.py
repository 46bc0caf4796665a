"""Per-track smoothing of the alignment: adaptive constant-velocity Kalman filter + fixed-lag RTS.

What is smoothed. Each detection's 5 landmarks are fitted to the template (least squares), and
the fit is reduced to 4 numbers (:class:`~gpen_video.faces.types.SimilarityParams`): the frame
point under the crop centre ``(cx, cy)``, the crop's width in frame pixels and its angle. The
filter works on ``z = (cx/r, cy/r, log(width/r), angle)`` with ``r`` the track's reference
inter-ocular distance (its first detection's): every component is then in units of the face's
own size, so the same noise levels and gates hold for a 30-pixel face and a 300-pixel one, and
the scale is multiplicative. Angles are unwrapped along the track.

Model. Each component follows a constant-velocity model with discrete white-noise acceleration
(``x = (p, v)``, ``Q = q·[[1/4, 1/2], [1/2, 1]]`` per frame); the 4 components are independent
(diagonal blocks), in one 8-state :class:`filterpy.kalman.KalmanFilter`.

Adaptivity, all from the track's own data:

* **Noise levels.** Per component, from the track's last ``noise_window`` measured frames:
  second differences at step 1 (``E[D₁²] ≈ 6ρ + σa²``) and at step ``h = accel_baseline``
  (``E[D_h²] ≈ 6ρ + h⁴σa²``) separate the measurement variance ``ρ`` from the variance of the
  motion's acceleration ``σa²``; ``R = ρ`` and ``q = accel_to_q·σa²`` (see
  :class:`_NoiseEstimator`). Both are causal, robust (medians), floored, and blended with priors
  (the detector's typical noise, :class:`SmoothTuning`) with a pseudo-count, so a young track is
  not left to a handful of samples.
* **Manoeuvres.** Before each update the normalised innovation of every component,
  ``y²/S``, is tested against ``maneuver_chi2`` (χ² with 1 degree of freedom). Where it fails (a
  pan starts or stops, a head turns), that component gets the process noise of a velocity step at
  the start of a frame interval — ``Δv`` of variance ``maneuver_gain·y²``, which moves the
  position by the same ``Δv`` (``[[1, 1], [1, 1]]``). The step goes where the manoeuvre began:
  up to ``maneuver_lookback`` frames earlier when those frames' innovations already leaned the
  same way (a slow turn crosses the threshold a frame or two late); the filter is re-run from
  there. It then follows the new motion at once, and the RTS pass, which keeps the raised ``Q``,
  puts a kink at the corner instead of averaging it away.
* **Detector confidence.** The measurement variance is divided by a weight that falls with the
  detector score: ``R/w``, ``w = 1/(1 + confidence_gain·(1 − score))``.

Output. ``method="none"``: the per-frame measurement (linear interpolation across gaps);
``"kalman"``: the causal filtered estimate; ``"rts"``: the fixed-lag Rauch–Tung–Striebel
estimate — the backward pass runs from the newest frame the stream holds down to the frame
being emitted, so each frame is smoothed with every measurement up to ``lag`` frames after it
and emitted final. Frames with no measurement (gaps, detect-every-N) are predicted forward and
smoothed backward, i.e. interpolated by the model.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from filterpy.kalman import KalmanFilter, rts_smoother

METHODS = ("rts", "kalman", "none")
_DIM = 4  # cx, cy, log width, angle


@dataclass(frozen=True)
class SmoothTuning:
    """Constants of the adaptive filter (chosen with ``benchmarks/face_stability.py``; the
    priors are RetinaFace MobileNet-0.25's measured landmark noise on 30–80 px faces).

    Noise levels are standard deviations in the filter's units: fractions of the inter-ocular
    distance for the centre, natural-log units for the scale, radians for the angle.
    """

    measure_sigma: tuple[float, float, float, float] = (0.01, 0.01, 0.01, 0.01)
    accel_sigma: tuple[float, float, float, float] = (0.005, 0.005, 0.003, 0.003)
    prior_weight: float = 20.0  # pseudo-count of the priors against the track's estimates
    noise_window: int = 90  # measured frames the noise estimate looks at
    accel_baseline: int = 4  # step h of the long-baseline second difference
    accel_to_q: float = 1.0  # process noise q = this × estimated acceleration variance
    min_measure_sigma: float = 0.003  # floors of the estimates (same units)
    min_accel_sigma: float = 0.001
    maneuver_chi2: float = 10.83  # χ²(1) at p = 0.001
    maneuver_gain: float = 1.0  # variance of a flagged step's velocity jump, × innovation²
    maneuver_onset_chi2: float = 2.71  # an earlier step leaning the same way (χ²(1), p = 0.1) …
    maneuver_lookback: int = 2  # … up to this many steps back, is where the manoeuvre began
    confidence_gain: float = 100.0  # R / w, w = 1 / (1 + gain·(1 − score))
    initial_velocity_sigma: float = 0.1  # per frame, same units


def _wrap_near(angle: float, reference: float) -> float:
    """``angle`` shifted by a multiple of 2π to lie within π of ``reference``."""
    return reference + (angle - reference + math.pi) % (2.0 * math.pi) - math.pi


class _NoiseEstimator:
    """Causal estimate of measurement and acceleration variances of one track (4 components).

    From the last ``noise_window`` measured frames: second differences at step 1,
    ``D₁ = z[k+1] − 2z[k] + z[k−1]``, and at step ``h``, ``D_h = z[k+h] − 2z[k] + z[k−h]``. With
    measurement variance ``ρ`` and a smooth acceleration of variance ``σa²``,
    ``E[D₁²] ≈ 6ρ + σa²`` and ``E[D_h²] ≈ 6ρ + h⁴σa²``: the long baseline lifts the motion ``h⁴``
    times above the noise, so both are identifiable from a short track. Both are taken robustly
    (medians of squares, scaled to variances), so the few frames of a manoeuvre — handled by the
    innovation test instead — count neither as noise nor as everyday motion.
    """

    def __init__(self, tuning: SmoothTuning, iod_per_width: float | None = None) -> None:
        self.tuning = tuning
        self.h = max(2, int(tuning.accel_baseline))
        self.history: deque[tuple[int, np.ndarray]] = deque(maxlen=tuning.noise_window)
        self.iod_per_width = iod_per_width
        self._prior_r = np.square(np.asarray(tuning.measure_sigma, dtype=np.float64))
        self._prior_q = np.square(np.asarray(tuning.accel_sigma, dtype=np.float64))
        self.r = self._prior_r.copy()
        self.q = self._prior_q.copy()

    def units(self) -> np.ndarray:
        """Per component, the square of the face's inter-ocular distance now (the mean over the
        window) in the track's units: priors and floors are in inter-ocular units, so with it
        every variance scales with the measurements and the filter's decisions do not depend
        on the track's reference scale (a chunk that starts a track later, on a face a little
        larger or smaller, then takes the decisions a single run takes). 1 without
        ``iod_per_width`` (the priors in the track's units, as a bare smoother is used)."""
        units = np.ones(_DIM)
        if self.iod_per_width is not None and self.history:
            log_width = np.mean([z[2] for _, z in self.history])
            units[:2] = (self.iod_per_width * math.exp(log_width)) ** 2
        return units

    def add(self, frame: int, z: np.ndarray) -> None:
        self.history.append((frame, np.asarray(z, dtype=np.float64)))
        if len(self.history) >= 3:
            self._update()
        elif self.iod_per_width is not None:
            self.r = self._prior_r * self.units()
            self.q = self._prior_q * self.units()

    def _second_differences(self, frames: np.ndarray, z: np.ndarray, step: int) -> np.ndarray:
        position = {int(f): i for i, f in enumerate(frames)}
        rows = [(position[f - step], i, position[f + step]) for i, f in enumerate(frames)
                if f - step in position and f + step in position]
        if not rows:
            return np.zeros((0, _DIM))
        a, b, c = (np.array(col) for col in zip(*rows))
        return z[c] - 2.0 * z[b] + z[a]

    def _update(self) -> None:
        t = self.tuning
        frames = np.array([f for f, _ in self.history])
        z = np.array([v for _, v in self.history])
        d1 = self._second_differences(frames, z, 1)
        n = len(d1)
        if n == 0:
            return
        units = self.units()
        prior_r, prior_q = self._prior_r * units, self._prior_q * units
        v1 = np.median(d1 * d1, axis=0) / 0.4549  # median of χ²(1) is 0.4549
        dh = self._second_differences(frames, z, self.h)
        if len(dh) >= 3:
            vh = np.median(dh * dh, axis=0) / 0.4549
            accel = np.maximum((vh - v1) / (self.h ** 4 - 1), 0.0)
        else:
            accel = prior_q
        r_hat = np.maximum((v1 - accel) / 6.0, t.min_measure_sigma ** 2 * units)
        q_hat = np.maximum(t.accel_to_q * accel, t.min_accel_sigma ** 2 * units)
        w0 = t.prior_weight
        self.r = (w0 * prior_r + n * r_hat) / (w0 + n)
        self.q = (w0 * prior_q + n * q_hat) / (w0 + n)


@dataclass
class _Step:
    """The inputs of one filter step (kept so a manoeuvre can re-run it) and its innovation."""

    q: np.ndarray  # (4,) white-acceleration variances
    jump: np.ndarray  # (4,) velocity-jump variances (manoeuvres)
    z: np.ndarray | None  # (4,) measurement
    r: np.ndarray | None  # (4,) measurement variances
    innovation: np.ndarray | None = None
    nis: np.ndarray | None = None  # innovation² / its predicted variance


class TrackSmoother:
    """The alignment filter of one track, fed one frame at a time (consecutive frames).

    ``add(frame, z, score)`` with ``z`` the measured 4-vector (see the module docstring) or
    ``None`` for a frame without a measurement; ``estimate(frame, newest)`` the smoothed 4-vector
    for ``frame`` using measurements up to ``newest``; ``forget_before(frame)`` drops history no
    longer needed.
    """

    def __init__(self, method: str = "rts", tuning: SmoothTuning = SmoothTuning(),
                 iod_per_width: float | None = None) -> None:
        """``iod_per_width``: inter-ocular distance ÷ crop width of the alignment template; given,
        the noise priors follow the face's current size (see ``_NoiseEstimator._units``)."""
        if method not in METHODS:
            raise ValueError(f"unknown smoothing method {method!r}: choose one of "
                             f"{', '.join(METHODS)}")
        self.method = method
        self.tuning = tuning
        self.noise = _NoiseEstimator(tuning, iod_per_width)
        self.first_frame: int | None = None
        self.last_frame: int | None = None
        # history, index i ↔ frame first_kept + i
        self.first_kept = 0
        self.xs: list[np.ndarray] = []  # posterior means (8,)
        self.ps: list[np.ndarray] = []  # posterior covariances (8, 8)
        self.qs: list[np.ndarray] = []  # process noise of the step INTO this frame (8, 8)
        self.zs: list[np.ndarray | None] = []  # unwrapped measurements
        self._steps: list[_Step] = []  # what each step used, to re-run it
        self.maneuvers = 0
        self._kf = KalmanFilter(dim_x=2 * _DIM, dim_z=_DIM)
        self._kf.F = np.eye(2 * _DIM)
        self._kf.F[:_DIM, _DIM:] = np.eye(_DIM)
        self._kf.H = np.zeros((_DIM, 2 * _DIM))
        self._kf.H[:, :_DIM] = np.eye(_DIM)
        self._F = self._kf.F.copy()

    @staticmethod
    def _q_matrix(q: np.ndarray, jump: np.ndarray) -> np.ndarray:
        """Process noise of one frame step, block per component ``(p, v)``:
        white acceleration ``q·[[1/4, 1/2], [1/2, 1]]`` plus a velocity step at the start of the
        interval, ``jump·[[1, 1], [1, 1]]`` (a change ``Δv`` moves the position by ``Δv`` too)."""
        mat = np.zeros((2 * _DIM, 2 * _DIM))
        idx = np.arange(_DIM)
        mat[idx, idx] = q / 4.0 + jump
        mat[idx, idx + _DIM] = q / 2.0 + jump
        mat[idx + _DIM, idx] = q / 2.0 + jump
        mat[idx + _DIM, idx + _DIM] = q + jump
        return mat

    def _run_step(self, x: np.ndarray, p: np.ndarray, step: "_Step"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One predict/update from posterior ``(x, p)``; returns posterior and the Q used."""
        kf = self._kf
        kf.x = x.reshape(-1, 1).copy()
        kf.P = p.copy()
        q_step = self._q_matrix(step.q, step.jump)
        kf.predict(Q=q_step)
        if step.z is not None:
            step.innovation = step.z - kf.x[:_DIM, 0]
            step.nis = step.innovation ** 2 / (np.diag(kf.P)[:_DIM] + step.r)
            kf.update(step.z.reshape(-1, 1), R=np.diag(step.r))
        return kf.x[:, 0].copy(), kf.P.copy(), q_step

    def add(self, frame: int, z: np.ndarray | None, score: float = 1.0) -> None:
        """Feed ``frame`` (the next one after the previous call) with its measurement or None.

        Raises:
            ValueError: frames not consecutive, or the first frame has no measurement.
        """
        if self.last_frame is not None and frame != self.last_frame + 1:
            raise ValueError(f"TrackSmoother.add: frame {frame} after {self.last_frame}")
        t = self.tuning
        if z is not None:
            z = np.asarray(z, dtype=np.float64).copy()
        if self.last_frame is None:
            if z is None:
                raise ValueError("a track starts with a measurement")
            x = np.concatenate([z, np.zeros(_DIM)])
            self.noise.add(frame, z)  # the priors, in this face's units
            p = np.diag(np.concatenate([self.noise.r, self.noise.units()
                                        * t.initial_velocity_sigma ** 2]))
            self.first_frame = self.first_kept = frame
            self._append(frame, x, p, self._q_matrix(self.noise.q, np.zeros(_DIM)), z,
                         _Step(self.noise.q.copy(), np.zeros(_DIM), z, None))
            return
        r = None
        if z is not None:
            z[3] = _wrap_near(float(z[3]), float(self.xs[-1][3] + self.xs[-1][3 + _DIM]))
            weight = 1.0 / (1.0 + t.confidence_gain * max(0.0, 1.0 - float(score)))
            r = self.noise.r / weight
        step = _Step(self.noise.q.copy(), np.zeros(_DIM), z, r)
        x, p, q_step = self._run_step(self.xs[-1], self.ps[-1], step)
        self._append(frame, x, p, q_step, z, step)
        if z is None:
            return
        flagged = step.nis > t.maneuver_chi2
        if flagged.any():
            self.maneuvers += 1
            self._maneuver(flagged, step.innovation.copy())
        self.noise.add(frame, z)

    def _maneuver(self, flagged: np.ndarray, innovation: np.ndarray) -> None:
        """Give the flagged components a velocity jump at the manoeuvre's onset and re-run.

        The onset is the newest step, or up to ``maneuver_lookback`` steps earlier where those
        steps' innovations already leaned the same way (``nis > maneuver_onset_chi2``): a slow
        turn crosses the threshold a frame or two after it starts.
        """
        t = self.tuning
        last = len(self._steps) - 1
        onset = np.full(_DIM, last)
        for c in np.flatnonzero(flagged):
            k = last
            while (k - 1 >= 1 and last - (k - 1) <= t.maneuver_lookback
                   and self._steps[k - 1].z is not None
                   and self._steps[k - 1].nis is not None
                   and self._steps[k - 1].nis[c] > t.maneuver_onset_chi2
                   and np.sign(self._steps[k - 1].innovation[c]) == np.sign(innovation[c])):
                k -= 1
            onset[c] = k
        first = int(onset[flagged].min())
        for c in np.flatnonzero(flagged):
            self._steps[onset[c]].jump[c] += t.maneuver_gain * innovation[c] ** 2
        for k in range(first, last + 1):
            x, p, q_step = self._run_step(self.xs[k - 1], self.ps[k - 1], self._steps[k])
            self.xs[k], self.ps[k], self.qs[k] = x, p, q_step

    def _append(self, frame: int, x: np.ndarray, p: np.ndarray, q_into: np.ndarray,
                z: np.ndarray | None, step: "_Step") -> None:
        self.xs.append(x)
        self.ps.append(p)
        self.qs.append(q_into)
        self.zs.append(None if z is None else z.copy())
        self._steps.append(step)
        self.last_frame = frame

    def _index(self, frame: int) -> int:
        i = frame - self.first_kept
        if not 0 <= i < len(self.xs):
            raise IndexError(f"frame {frame} is not in this track's history "
                             f"({self.first_kept}…{self.last_frame})")
        return i

    def estimate(self, frame: int, newest: int | None = None) -> np.ndarray:
        """The 4-vector for ``frame`` with the configured method, using frames ≤ ``newest``."""
        i = self._index(frame)
        j = self._index(self.last_frame if newest is None else min(newest, self.last_frame))
        if self.method == "none":
            return self._interpolated(i, j)
        if self.method == "kalman" or j <= i:
            return self.xs[i][:_DIM].copy()
        xs = np.array(self.xs[i:j + 1])
        ps = np.array(self.ps[i:j + 1])
        qs = np.array(self.qs[i + 1:j + 1] + [self.qs[j]])  # Qs[k]: step k → k+1
        fs = np.broadcast_to(self._F, (len(xs),) + self._F.shape)
        smoothed, _, _, _ = rts_smoother(xs, ps, fs, qs)
        return smoothed[0][:_DIM].copy()

    def _interpolated(self, i: int, j: int) -> np.ndarray:
        if self.zs[i] is not None:
            return self.zs[i].copy()
        before = next((k for k in range(i - 1, -1, -1) if self.zs[k] is not None), None)
        after = next((k for k in range(i + 1, j + 1) if self.zs[k] is not None), None)
        if before is None and after is None:
            return self.xs[i][:_DIM].copy()
        if before is None or after is None:
            return self.zs[before if after is None else after].copy()
        a = (i - before) / (after - before)
        return (1.0 - a) * self.zs[before] + a * self.zs[after]

    def forget_before(self, frame: int) -> None:
        """Drop history before ``frame`` (keeping one measured frame for interpolation)."""
        drop = frame - self.first_kept
        if self.method == "none":
            # keep the last measured frame before `frame` for gap interpolation
            last_measured = max((k for k in range(min(drop, len(self.zs)))
                                 if self.zs[k] is not None), default=None)
            if last_measured is not None:
                drop = min(drop, last_measured)
        if drop <= 0:
            return
        del self.xs[:drop], self.ps[:drop], self.qs[:drop], self.zs[:drop], self._steps[:drop]
        self.first_kept += drop
