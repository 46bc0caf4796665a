"""B1 — alignment stability: a real face photo moved along a known trajectory.

A face photo is rendered into every frame through a known similarity ``T_k`` (photo → frame) over
a static textured background, with a feathered edge. Landmarks come from the real RetinaFace
(MobileNet-0.25, ``testdata/weights``) on each rendered frame — or, in ``--mode synthetic``, from
the photo's own landmarks moved by ``T_k`` plus Gaussian noise. Each method gives a frame → crop
matrix ``M_k`` (512 crop). If the alignment were perfect, ``A_k = M_k ∘ T_k`` (photo → crop)
would be constant; the error of frame *k* is the RMS, over the 5 template points, of how far
``A_k`` puts them from where the shot's mean ``Ā`` puts them, in 512-crop pixels (the mean
removes the detector's constant bias, which does not shake). Jitter is the same RMS between
consecutive frames' ``A_k``.

Scenarios: ``smooth`` (sinusoids: ±15 % of the frame width in x, ±8 % height in y, ±10°,
±15 % scale, periods 3–5 s), ``jerky`` (holds, fast pans with abrupt starts and stops, quick
turns and zooms) and ``cut`` (a smooth shot, a hard cut, another photo in another shot).

Methods: ``raw`` (per-frame least-squares fit of the detector's landmarks — what facexlib-based
tools do, minus LMEDS), ``refined`` (per-frame fit after the product's refinement passes,
:meth:`FaceDetector.refine`), ``gaussian`` (raw landmarks smoothed with a fixed Gaussian,
σ = 3 frames — KEEP's approach), ``kalman`` (causal adaptive filter), ``rts`` (the adaptive RTS
smoother over the whole shot, offline), ``default`` (what the product runs: refinement +
fixed-lag RTS with the ``SmoothOptions()`` lag; ``--detect full``), ``default_unrefined`` (the
default smoother on unrefined landmarks: the smoother's share alone) and ``tracked`` (the
product's default faces step end to end: :class:`~gpen_video.faces.analyse.FaceAnalyser` in
tracked mode — windows around each face's predicted landmarks, full scans every 0.5 s — then the
default stream; check: tracked RMSE ≤ 1.1 × default in every scenario). ``kalman``, ``rts`` and ``default`` use the
refined landmarks; all stream methods run through :class:`gpen_video.faces.FaceStream`, tracker
included. In synthetic mode there is no refinement (``refined`` = ``raw``), so the ratios there
measure the smoother alone.

Pass criteria (issue 4): default RMSE ≤ 0.5 × raw on smooth and ≤ 1.0 × raw on jerky; default max
error ≤ 5 % of the inter-ocular distance (5.37 px in a 512 crop); nothing carried across the cut
(the second shot's output is identical to running the second shot alone).

    python benchmarks/face_stability.py     # → benchmarks/results/face_stability.json + RESULTS.md
    python benchmarks/face_stability.py --mode synthetic --size 320x180
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gpen_video.bench.records import update_section, write_json  # noqa: E402
from gpen_video.faces import (  # noqa: E402
    FFHQ_TEMPLATE_512,
    TEMPLATE_IOD_512,
    Detection,
    FaceStream,
    apply_affine,
    invert_affine,
    similarity_to_template,
)
from gpen_video.options import DetectOptions, SmoothOptions, TrackOptions  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
PHOTOS = ("images/gpen_ffhq-10_00004.png", "images/gpen_val_hq_ffhq_00001.png")
WEIGHTS = "weights/detection_mobilenet0.25_Final.pth"
MAX_ERROR_FRACTION = 0.05
MAX_ERROR_PX = MAX_ERROR_FRACTION * TEMPLATE_IOD_512  # ≈ 5.37 px in a 512 crop
METHODS = ("raw", "refined", "gaussian", "kalman", "rts", "default", "default_unrefined",
           "tracked")
TRACKED_LIMIT = 1.10  # tracked-mode RMSE may exceed the full-frame default's by at most 10 %


# -- trajectories ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pose:
    """Where the photo's face centre goes (fraction of frame size from the centre), angle, scale."""

    dx: float = 0.0  # × frame width
    dy: float = 0.0  # × frame height
    angle_deg: float = 0.0
    scale: float = 1.0


def smooth_poses(n: int, fps: float) -> list[Pose]:
    t = np.arange(n) / fps
    return [Pose(0.15 * math.sin(2 * math.pi * ti / 4.0),
                 0.08 * math.sin(2 * math.pi * ti / 3.0 + 0.7),
                 10.0 * math.sin(2 * math.pi * ti / 5.0 + 0.3),
                 1.0 + 0.15 * math.sin(2 * math.pi * ti / 3.5 + 1.1)) for ti in t]


def jerky_poses(n: int, fps: float) -> list[Pose]:
    """Holds and fast moves with abrupt starts and stops (piecewise linear), repeated to ``n``."""
    keys = [  # (frames to reach, pose reached)
        (12, Pose()), (6, Pose(dx=0.25)), (14, Pose(dx=0.25)),
        (4, Pose(dx=0.25, angle_deg=10.0)), (12, Pose(dx=0.25, angle_deg=10.0)),
        (5, Pose(dx=-0.05, dy=0.1, angle_deg=10.0, scale=1.15)),
        (12, Pose(dx=-0.05, dy=0.1, angle_deg=10.0, scale=1.15)),
        (8, Pose(dx=-0.2, dy=-0.05, angle_deg=-5.0, scale=0.9)),
        (14, Pose(dx=-0.2, dy=-0.05, angle_deg=-5.0, scale=0.9)),
        (3, Pose(dx=-0.1, dy=-0.05, angle_deg=-5.0, scale=0.9)),
        (10, Pose(dx=-0.1, dy=-0.05, angle_deg=-5.0, scale=0.9)),
        (6, Pose()),
    ]
    poses = [Pose()]
    while len(poses) < n:
        for frames, target in keys:
            start = poses[-1]
            for i in range(1, frames + 1):
                a = i / frames
                poses.append(Pose(*(getattr(start, f) + a * (getattr(target, f) - getattr(start, f))
                                    for f in ("dx", "dy", "angle_deg", "scale"))))
    return poses[:n]


# -- rendering ---------------------------------------------------------------------------------

@dataclass
class Photo:
    rgb: np.ndarray  # the photo, RGB uint8
    alpha: np.ndarray  # feathered mask, float32 0..1
    landmarks: np.ndarray  # (5, 2) in photo pixels (template × photo size / 512: FFHQ-aligned)

    @property
    def centre(self) -> np.ndarray:
        return self.landmarks.mean(axis=0)

    @property
    def iod(self) -> float:
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))

    def scaled(self, iod_px: float) -> "Photo":
        """A copy downscaled (area filter) so that the face's IOD is ``iod_px``; rendering then
        only resamples by the pose's scale, without aliasing."""
        k = iod_px / self.iod
        h, w = self.rgb.shape[:2]
        size = (round(w * k), round(h * k))
        sx, sy = size[0] / w, size[1] / h
        rgb = cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(self.alpha, size, interpolation=cv2.INTER_AREA)
        points = (self.landmarks + 0.5) * np.array([sx, sy]) - 0.5
        return Photo(rgb, alpha, points)


def load_photo(path: Path) -> Photo:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - w / 2) / (0.47 * w)) ** 2 + ((yy - h / 2) / (0.47 * h)) ** 2)
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0).astype(np.float32)
    return Photo(rgb, alpha, FFHQ_TEMPLATE_512 * (w / 512.0))


def background(size: tuple[int, int], seed: int) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 200, size=(max(2, h // 24), max(2, w // 24), 3)).astype(np.float32)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    bg = cv2.GaussianBlur(bg, (0, 0), 3)
    return np.clip(bg, 0, 255).astype(np.uint8)


def pose_matrix(pose: Pose, photo: Photo, size: tuple[int, int], iod_px: float,
                anchor: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """``T``: photo → frame for a pose (2×3). The face's IOD is ``iod_px × scale``."""
    w, h = size
    k = iod_px / photo.iod * pose.scale
    a = math.radians(pose.angle_deg)
    rot = k * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    target = np.array([w * (anchor[0] + pose.dx), h * (anchor[1] + pose.dy)])
    matrix = np.empty((2, 3))
    matrix[:, :2] = rot
    matrix[:, 2] = target - rot @ photo.centre
    return matrix


def render(photo: Photo, matrix: np.ndarray, bg: np.ndarray) -> np.ndarray:
    h, w = bg.shape[:2]
    face = cv2.warpAffine(photo.rgb, matrix, (w, h), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(photo.alpha, matrix, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)[:, :, None]
    out = alpha * face.astype(np.float32) + (1.0 - alpha) * bg.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Clip:
    """A rendered scenario: truths per frame, the shot each frame is in, cut positions."""

    name: str
    size: tuple[int, int]
    fps: float
    truths: list[np.ndarray]  # T_k, photo → frame
    shot: list[int]  # shot number per frame
    photos: list[Photo]  # per shot
    frames: list[np.ndarray] | None = None
    cuts: list[int] = field(default_factory=list)  # first frames of shots after the first


def make_clip(name: str, size: tuple[int, int], n: int, fps: float, iod_px: float,
              render_frames: bool, photos: list[Photo]) -> Clip:
    shots: list[tuple[list[Pose], Photo, tuple[float, float], int]]
    if name == "smooth":
        shots = [(smooth_poses(n, fps), photos[0], (0.5, 0.5), 1)]
    elif name == "jerky":
        shots = [(jerky_poses(n, fps), photos[0], (0.5, 0.5), 2)]
    elif name == "cut":
        half = n // 2
        shots = [(smooth_poses(half, fps), photos[0], (0.5, 0.5), 3),
                 ([replace(p, dx=-p.dx) for p in smooth_poses(n - half, fps)[::-1]], photos[-1],
                  (0.42, 0.55), 4)]
    else:
        raise ValueError(name)
    clip = Clip(name, size, fps, [], [], [], [] if render_frames else None)
    for s, (poses, photo, anchor, seed) in enumerate(shots):
        photo = photo.scaled(iod_px)
        if s:
            clip.cuts.append(len(clip.truths))
        clip.photos.append(photo)
        bg = background(size, seed)
        for pose in poses:
            t = pose_matrix(pose, photo, size, iod_px, anchor)
            clip.truths.append(t)
            clip.shot.append(s)
            if render_frames:
                clip.frames.append(render(photo, t, bg))
    return clip


# -- landmarks ---------------------------------------------------------------------------------

def detector_landmarks(clip: Clip, weights: Path, batch: int = 4
                       ) -> tuple[list[list[Detection]], list[list[Detection]]]:
    """RetinaFace MobileNet-0.25 on every rendered frame, product defaults otherwise: the
    detector's own landmarks and the landmarks after the product's refinement passes."""
    from gpen_video.faces.detect import FaceDetector

    options = DetectOptions(network="mobile0.25", weights=weights, batch=batch, device="cpu")
    detector = FaceDetector(replace(options, refine=0))
    assert clip.frames is not None
    plain: list[list[Detection]] = []
    refined: list[list[Detection]] = []
    for i in range(0, len(clip.frames), batch):
        frames = clip.frames[i:i + batch]
        found = detector.detect(frames)
        plain.extend(found)
        for _ in range(options.refine):
            found = detector.refine(frames, found)
        refined.extend(found)
    return plain, refined


def synthetic_landmarks(clip: Clip, sigma: float, seed: int = 0) -> list[list[Detection]]:
    """True landmarks + N(0, (sigma·IOD)²) per coordinate; boxes around them."""
    rng = np.random.default_rng(seed)
    out = []
    for t, s in zip(clip.truths, clip.shot):
        points = apply_affine(t, clip.photos[s].landmarks)
        iod = float(np.hypot(*(points[1] - points[0])))
        points = points + rng.normal(0.0, sigma * iod, size=points.shape)
        centre = points.mean(axis=0)
        half = 1.1 * iod
        box = np.array([centre[0] - half, centre[1] - 1.3 * half, centre[0] + half,
                        centre[1] + 1.1 * half])
        out.append([Detection(box, 0.999, points)])
    return out


# -- methods -----------------------------------------------------------------------------------

def _nearest(faces, truth: np.ndarray, photo: Photo):
    """The face (Detection or TrackedFace) whose landmarks are nearest the true ones."""
    if not faces:
        return None
    true_points = apply_affine(truth, photo.landmarks)
    return min(faces, key=lambda f: float(np.abs(f.landmarks - true_points).mean()))


def raw_matrices(clip: Clip, dets: list[list[Detection]]) -> list[np.ndarray | None]:
    out = []
    for k, faces in enumerate(dets):
        face = _nearest(faces, clip.truths[k], clip.photos[clip.shot[k]])
        out.append(None if face is None else similarity_to_template(face.landmarks, 512))
    return out


def gaussian_matrices(clip: Clip, dets: list[list[Detection]], sigma: float = 3.0
                      ) -> list[np.ndarray | None]:
    """Landmarks smoothed with a fixed Gaussian per shot (KEEP's approach), then fitted."""
    raw = []
    for k, faces in enumerate(dets):
        face = _nearest(faces, clip.truths[k], clip.photos[clip.shot[k]])
        raw.append(None if face is None else face.landmarks)
    out: list[np.ndarray | None] = [None] * len(raw)
    radius = int(3 * sigma)
    for k in range(len(raw)):
        if raw[k] is None:
            continue
        acc, wsum = np.zeros((5, 2)), 0.0
        for j in range(max(0, k - radius), min(len(raw), k + radius + 1)):
            if raw[j] is None or clip.shot[j] != clip.shot[k]:
                continue
            w = math.exp(-0.5 * ((j - k) / sigma) ** 2)
            acc += w * raw[j]
            wsum += w
        out[k] = similarity_to_template(acc / wsum, 512)
    return out


def stream_matrices(clip: Clip, dets: list[list[Detection]], method: str, lag_seconds: float,
                    start: int = 0) -> tuple[list[np.ndarray | None], list[int | None]]:
    """Run FaceStream over frames ``start…``; the matrix and track id per frame (None: no face)."""
    stream = FaceStream(TrackOptions(), SmoothOptions(method=method, lag_seconds=lag_seconds),
                        fps=clip.fps, crop_size=512)
    n = len(dets)
    matrices: list[np.ndarray | None] = [None] * n
    ids: list[int | None] = [None] * n
    outputs = []
    for k in range(start, n):
        outputs += stream.push(dets[k], cut=k in clip.cuts)
    outputs += stream.flush()
    for ff in outputs:
        k = ff.frame_index + start
        face = _nearest(list(ff.faces), clip.truths[k], clip.photos[clip.shot[k]])
        if face is not None:
            matrices[k] = face.matrix
            ids[k] = face.track_id
    return matrices, ids


def tracked_matrices(clip: Clip, weights: Path, batch: int = 4,
                     **overrides) -> list[np.ndarray | None]:
    """The product's default faces step end to end: :class:`FaceAnalyser` in tracked mode
    (windows around tracked faces, periodic full scans) on the rendered frames, the default
    stream after it."""
    from gpen_video.faces.analyse import FaceAnalyser, stream_detect_every
    from gpen_video.faces.detect import FaceDetector

    options = DetectOptions(network="mobile0.25", weights=weights, batch=batch, device="cpu",
                            mode="tracked")
    options = replace(options, **overrides)
    assert clip.frames is not None
    stream = FaceStream(TrackOptions(), SmoothOptions(), fps=clip.fps, crop_size=512,
                        detect_every=stream_detect_every(options, clip.fps))
    analyser = FaceAnalyser(FaceDetector(options), stream, options,
                            cut_threshold=TrackOptions().cut_threshold, fps=clip.fps)
    outputs = []
    for i in range(0, len(clip.frames), batch):
        outputs += analyser.push(clip.frames[i:i + batch])
    outputs += analyser.flush()
    matrices: list[np.ndarray | None] = [None] * len(clip.frames)
    for ff in outputs:
        k = ff.frame_index
        face = _nearest(list(ff.faces), clip.truths[k], clip.photos[clip.shot[k]])
        if face is not None:
            matrices[k] = face.matrix
    return matrices


def method_matrices(clip: Clip, plain: list[list[Detection]], refined: list[list[Detection]],
                    method: str) -> list[np.ndarray | None]:
    """One method's matrices. ``plain``: the detector's landmarks; ``refined``: after the
    product's refinement passes (the same list in synthetic mode)."""
    default = SmoothOptions()
    if method == "raw":
        return raw_matrices(clip, plain)
    if method == "refined":
        return raw_matrices(clip, refined)
    if method == "gaussian":
        return gaussian_matrices(clip, plain)
    if method == "kalman":
        return stream_matrices(clip, refined, "kalman", default.lag_seconds)[0]
    if method == "rts":  # whole-shot smoother: a look-ahead longer than the clip
        return stream_matrices(clip, refined, "rts", (len(refined) + 1) / clip.fps)[0]
    if method == "default":
        return stream_matrices(clip, refined, default.method, default.lag_seconds)[0]
    if method == "default_unrefined":
        return stream_matrices(clip, plain, default.method, default.lag_seconds)[0]
    raise ValueError(method)


# -- metrics -----------------------------------------------------------------------------------

def _compose(m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``m ∘ t`` for 2×3 affines."""
    out = np.empty((2, 3))
    out[:, :2] = m[:, :2] @ t[:, :2]
    out[:, 2] = m[:, :2] @ t[:, 2] + m[:, 2]
    return out


def errors(clip: Clip, matrices: list[np.ndarray | None]) -> dict:
    """Per-shot crop-space errors (512 px) of a method's matrices."""
    per_frame = np.full(len(matrices), np.nan)
    jitter: list[float] = []
    for s in sorted(set(clip.shot)):
        idx = [k for k in range(len(matrices)) if clip.shot[k] == s and matrices[k] is not None]
        if not idx:
            continue
        composed = {k: _compose(matrices[k], clip.truths[k]) for k in idx}
        mean = np.mean([composed[k] for k in idx], axis=0)
        points = apply_affine(invert_affine(mean), FFHQ_TEMPLATE_512)  # photo points
        target = FFHQ_TEMPLATE_512
        for k in idx:
            d = apply_affine(composed[k], points) - target
            per_frame[k] = math.sqrt(float(np.mean(np.sum(d * d, axis=1))))
            if k - 1 in composed:
                dj = apply_affine(composed[k], points) - apply_affine(composed[k - 1], points)
                jitter.append(math.sqrt(float(np.mean(np.sum(dj * dj, axis=1)))))
    valid = per_frame[~np.isnan(per_frame)]
    return {
        "rmse_px": float(np.sqrt(np.mean(valid ** 2))) if len(valid) else float("nan"),
        "jitter_px": float(np.sqrt(np.mean(np.square(jitter)))) if jitter else float("nan"),
        "max_px": float(valid.max()) if len(valid) else float("nan"),
        "frames": int(len(valid)),
        "per_frame": per_frame,
    }


def cut_isolation(clip: Clip, dets: list[list[Detection]]) -> dict:
    """Second shot through the default stream, alone vs after the first shot: max difference."""
    assert clip.cuts, "the cut scenario has a cut"
    cut = clip.cuts[0]
    lag = SmoothOptions().lag_seconds
    together, ids = stream_matrices(clip, dets, SmoothOptions().method, lag)
    alone, _ = stream_matrices(clip, dets, SmoothOptions().method, lag, start=cut)
    diff = 0.0
    mismatched = 0
    for k in range(cut, len(dets)):
        if (together[k] is None) != (alone[k] is None):
            mismatched += 1
        elif together[k] is not None:
            diff = max(diff, float(np.abs(together[k] - alone[k]).max()))
    before = {i for i in ids[:cut] if i is not None}
    after = {i for i in ids[cut:] if i is not None}
    return {"max_matrix_difference": diff, "frames_differing_in_presence": mismatched,
            "track_ids_before": sorted(before), "track_ids_after": sorted(after),
            "shared_track_ids": sorted(before & after)}


# -- driver ------------------------------------------------------------------------------------

def evaluate(size: tuple[int, int] = (640, 360), frames: int = 150, fps: float = 25.0,
             iod_fraction: float = 0.07, mode: str = "detector", sigma: float = 0.015,
             lags: tuple[float, ...] = (), scenarios: tuple[str, ...] = ("smooth", "jerky", "cut"),
             testdata: Path = TESTDATA) -> dict:
    """Run B1; returns the results dictionary (also what the JSON holds)."""
    photos = [load_photo(testdata / p) for p in PHOTOS]
    iod_px = iod_fraction * size[0]
    results: dict = {"size": list(size), "frames": frames, "fps": fps, "iod_px": iod_px,
                     "mode": mode, "max_error_limit_px": MAX_ERROR_PX, "scenarios": {}}
    if mode == "synthetic":
        results["synthetic_sigma_iod"] = sigma
    for name in scenarios:
        clip = make_clip(name, size, frames, fps, iod_px, mode == "detector", photos)
        t0 = time.perf_counter()
        if mode == "detector":
            plain, dets = detector_landmarks(clip, testdata / WEIGHTS)
        else:
            plain = dets = synthetic_landmarks(clip, sigma)
        detect_s = time.perf_counter() - t0
        entry: dict = {"frames": len(dets), "detected_frames": sum(1 for d in dets if d),
                       "detect_seconds": detect_s, "methods": {}}
        for method in METHODS:
            if mode == "synthetic" and method in ("refined", "default_unrefined", "tracked"):
                continue
            t0 = time.perf_counter()
            if method == "tracked":
                matrices = tracked_matrices(clip, testdata / WEIGHTS)
            else:
                matrices = method_matrices(clip, plain, dets, method)
            stats = errors(clip, matrices)
            stats["seconds"] = time.perf_counter() - t0
            per_frame = stats.pop("per_frame")
            if clip.cuts:
                c = clip.cuts[0]
                window = per_frame[c:c + 5]
                stats["max_px_first5_after_cut"] = float(np.nanmax(window)) if np.isfinite(
                    window).any() else float("nan")
            entry["methods"][method] = stats
        if lags:
            sweep = {}
            for lag in lags:
                m, _ = stream_matrices(clip, dets, "rts", lag)
                e = errors(clip, m)
                sweep[f"{lag:g}"] = {"lag_frames": math.ceil(lag * fps - 1e-9),
                                     "rmse_px": e["rmse_px"], "max_px": e["max_px"]}
            entry["lag_sweep"] = sweep
        if clip.cuts:
            entry["cut_isolation"] = cut_isolation(clip, dets)
        results["scenarios"][name] = entry
    results["checks"] = check(results)
    return results


def check(results: dict) -> dict:
    """The issue's pass criteria, evaluated on a results dictionary."""
    out = {}
    sc = results["scenarios"]
    if "smooth" in sc:
        m = sc["smooth"]["methods"]
        out["smooth_rmse_ratio"] = m["default"]["rmse_px"] / m["raw"]["rmse_px"]
        out["smooth_pass"] = out["smooth_rmse_ratio"] <= 0.5
    if "jerky" in sc:
        m = sc["jerky"]["methods"]
        out["jerky_rmse_ratio"] = m["default"]["rmse_px"] / m["raw"]["rmse_px"]
        out["jerky_pass"] = out["jerky_rmse_ratio"] <= 1.0
    ratios = {n: s["methods"]["tracked"]["rmse_px"] / s["methods"]["default"]["rmse_px"]
              for n, s in sc.items() if "tracked" in s["methods"]}
    if ratios:
        out["tracked_rmse_ratio"] = max(ratios.values())
        out["tracked_pass"] = out["tracked_rmse_ratio"] <= TRACKED_LIMIT
    max_err = max(s["methods"]["default"]["max_px"] for s in sc.values())
    out["default_max_px"] = max_err
    out["max_error_pass"] = max_err <= MAX_ERROR_PX
    if "cut" in sc:
        iso = sc["cut"]["cut_isolation"]
        out["cut_pass"] = (iso["max_matrix_difference"] == 0.0
                           and iso["frames_differing_in_presence"] == 0
                           and not iso["shared_track_ids"])
    out["all_pass"] = all(v for k, v in out.items() if k.endswith("_pass"))
    return out


def _table(results: dict) -> str:
    lines = ["| scenario | method | RMSE px | jitter px | max px |", "|---|---|---|---|---|"]
    for name, entry in results["scenarios"].items():
        for method, s in entry["methods"].items():
            lines.append(f"| {name} | {method} | {s['rmse_px']:.2f} | {s['jitter_px']:.2f} | "
                         f"{s['max_px']:.2f} |")
    return "\n".join(lines)


RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"


def update_results_md(name: str, block: str, path: Path = RESULTS_MD) -> None:
    """Replace the ``name`` section (between its markers) of RESULTS.md, or append it."""
    update_section(path, name, block)


def markdown(report: dict) -> str:
    lines = ["## B1: face alignment stability (`benchmarks/face_stability.py`)", "",
             "A real face photo (FFHQ-aligned `gpen_ffhq-10_00004.png`; the cut scenario "
             "switches to `gpen_val_hq_ffhq_00001.png`) rendered along known trajectories into "
             "640×360 frames (face inter-ocular distance ≈ 45 px, 25 fps, 150 frames per "
             "scenario): *smooth* sinusoids (±15 % width, ±8 % height, ±10°, ±15 % scale), "
             "*jerky* holds with abrupt fast pans, turns and zooms, and *cut* (two shots). "
             "Error: RMS over the 5 template points of the deviation of (estimated crop ∘ true "
             "motion) from its per-shot mean, in 512-crop pixels (5 % of the inter-ocular "
             "distance = 5.37 px). Jitter: the same between consecutive frames.", "",
             "Methods: *raw* per-frame fit of RetinaFace MobileNet-0.25 landmarks (what "
             "per-frame tools do); *refined* per-frame fit after the detector's 2 refinement "
             "passes (canonical-crop re-detection); *gaussian* σ = 3 frames on raw landmarks "
             "(KEEP's approach); *kalman* causal adaptive filter, *rts* whole-shot adaptive "
             "RTS, *default* the product (refinement + fixed-lag RTS, lag 0.5 s), all on refined "
             "landmarks through `FaceStream`; *default_unrefined*: the default smoother on raw "
             "landmarks (the smoother's share alone); *tracked*: the product's default faces "
             "step end to end — tracked detection (each face re-detected in windows around its "
             "predicted landmarks, full scans every 0.5 s) and the default stream; *default* is "
             "then what `--detect full` gives. Synthetic mode: true landmarks + Gaussian "
             f"noise (σ = {report['runs'].get('synthetic', {}).get('synthetic_sigma_iod', 0.015)}"
             " × IOD per coordinate), no refinement.", "",
             f"Machine: {report['machine']}, CPU, torch threads {report['torch_threads']} (2 "
             "cores shared with other jobs). Command: `python benchmarks/face_stability.py`."]
    for mode, res in report["runs"].items():
        lines += ["", f"### {mode} landmarks", "",
                  "| scenario | method | RMSE px | jitter px | max px |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for name, entry in res["scenarios"].items():
            for method, st in entry["methods"].items():
                bold = "**" if method == "default" else ""
                lines.append(f"| {name} | {bold}{method}{bold} | {st['rmse_px']:.2f} | "
                             f"{st['jitter_px']:.2f} | {st['max_px']:.2f} |")
        c = res["checks"]
        lines += ["", f"Pass criteria: default/raw RMSE smooth {c['smooth_rmse_ratio']:.2f} "
                  f"(≤ 0.5: {'pass' if c['smooth_pass'] else 'FAIL'}), jerky "
                  f"{c['jerky_rmse_ratio']:.2f} (≤ 1.0: {'pass' if c['jerky_pass'] else 'FAIL'}); "
                  f"default max error {c['default_max_px']:.2f} px (≤ 5.37: "
                  f"{'pass' if c['max_error_pass'] else 'FAIL'}); cut: second shot identical to "
                  f"running it alone, no shared track ids ({'pass' if c['cut_pass'] else 'FAIL'})."]
        if "tracked_rmse_ratio" in c:
            lines += ["", f"Tracked detection: worst tracked/default RMSE ratio over the "
                      f"scenarios {c['tracked_rmse_ratio']:.2f} (≤ {TRACKED_LIMIT:.2f}: "
                      f"{'pass' if c['tracked_pass'] else 'FAIL'})."]
        sweeps = {n: e["lag_sweep"] for n, e in res["scenarios"].items() if "lag_sweep" in e}
        if sweeps:
            lags = list(next(iter(sweeps.values())).values())
            lines += ["", "Fixed-lag look-ahead of the RTS smoother (RMSE px / max px):", "",
                      "| scenario | " + " | ".join(f"{v['lag_frames']} f" for v in lags) + " |",
                      "| --- |" + " ---: |" * len(lags)]
            for n, sw in sweeps.items():
                lines.append(f"| {n} | " + " | ".join(
                    f"{v['rmse_px']:.2f} / {v['max_px']:.2f}" for v in sw.values()) + " |")
    lines += ["", "Reading: RetinaFace's landmark error is mostly *not* white noise — it depends "
              "on the face's scale, angle and position on the anchor grid and drifts slowly as "
              "the face moves, so a temporal smoother alone removes only part of it "
              "(default_unrefined vs raw). Re-detecting each face in its canonical upright crop "
              "makes that bias nearly constant (refined), and the adaptive RTS then removes most "
              "of the rest, with manoeuvres (pan starts/stops) detected by the innovation test. "
              "So the pass ratios above (default / raw) credit both the refinement and the "
              "smoother. The smoother's own share, measured separately: on the detector's "
              "unrefined landmarks it reaches ≈ 0.76× raw on *smooth* and ≈ 0.9× on *jerky* "
              "(alone it would not meet the 0.5 criterion with this detector); on white "
              "synthetic noise it reaches 0.44× and 0.71×. The look-ahead gain is flat beyond "
              "≈ 8 frames on smooth motion; the default 0.5 s (13 frames at 25 fps) sits on the "
              "flat part (on synthetic jerky motion 2 frames of look-ahead is slightly better "
              "than more: corners are where a longer look-ahead can only hurt). The Gaussian's "
              "large maxima are at shot ends (one-sided window) and at pan corners.", "",
              "Raw data: `benchmarks/results/face_stability.json`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--iod", type=float, default=0.07, help="face IOD as a fraction of width")
    parser.add_argument("--mode", default="both", choices=["detector", "synthetic", "both"])
    parser.add_argument("--sigma", type=float, default=0.015, help="synthetic noise, × IOD")
    parser.add_argument("--lags", default="0,0.08,0.16,0.24,0.32,0.48,0.64,1.0",
                        help="lag sweep (seconds) for the default smoother; empty to skip")
    parser.add_argument("--no-markdown", dest="markdown", action="store_false",
                        help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: this machine's 2 cores are shared)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "face_stability.json")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    lags = tuple(float(v) for v in args.lags.split(",") if v.strip())
    import torch

    torch.set_num_threads(args.threads)
    modes = ["detector", "synthetic"] if args.mode == "both" else [args.mode]
    report = {"benchmark": "B1 face stability",
              "machine": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "runs": {}}
    for mode in modes:
        t0 = time.perf_counter()
        res = evaluate((w, h), args.frames, args.fps, args.iod, mode, args.sigma, lags)
        res["seconds"] = time.perf_counter() - t0
        report["runs"][mode] = res
        print(f"== {mode} ({res['seconds']:.0f} s)")
        print(_table(res))
        if any("lag_sweep" in e for e in res["scenarios"].values()):
            for name, e in res["scenarios"].items():
                sweep = ", ".join(f"{v['lag_frames']}f {v['rmse_px']:.2f}/{v['max_px']:.2f}"
                                  for v in e.get("lag_sweep", {}).values())
                print(f"lag sweep {name} (frames rmse/max): {sweep}")
        print(json.dumps(res["checks"], indent=1))
    write_json(args.out, report)
    print(f"wrote {args.out}")
    if args.markdown:
        update_results_md("face_stability", markdown(report))
        print(f"updated {RESULTS_MD}")
    return 0 if all(r["checks"]["all_pass"] for r in report["runs"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
