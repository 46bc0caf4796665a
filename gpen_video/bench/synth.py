"""Benchmark clips synthesised from one face photo: N faces moving over a textured background.

A scene is ``"1080p:1"``, ``"4k:4"`` or ``"WxH:N"`` (N faces). Each face is the photo (an aligned
face image, e.g. FFHQ) under a feathered oval mask, on its own smooth trajectory (translation,
±8° roll, ±8 % scale), over a background that pans slowly (so the encoder sees ordinary motion,
not a still). The clip is H.264 (libx264 CRF 18, yuv420p) in MP4, written once per scene before
anything is timed; the pipeline then decodes and re-encodes it like any user clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from gpen_video.errors import InputError, UsageError

NAMED_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
DEFAULT_FACE = "liveportrait_d18.jpg"  # one of the quality gate's crops (package data)


@dataclass(frozen=True)
class Scene:
    """A synthesised clip's shape: frame size and number of faces."""

    width: int
    height: int
    faces: int

    @property
    def name(self) -> str:
        for label, size in NAMED_SIZES.items():
            if size == (self.width, self.height):
                return f"{label}:{self.faces}"
        return f"{self.width}x{self.height}:{self.faces}"

    def describe(self) -> str:
        size = self.name.split(":")[0]
        return f"{size}, {self.faces} moving face{'s' if self.faces != 1 else ''}"


def parse_scene(text: str) -> Scene:
    """``"1080p:1"``, ``"4k:4"``, ``"640x360:2"`` → :class:`Scene`.

    Raises:
        UsageError: not of that form.
    """
    size, sep, count = text.strip().lower().partition(":")
    try:
        faces = int(count) if sep else 1
        if size in NAMED_SIZES:
            width, height = NAMED_SIZES[size]
        else:
            w, _, h = size.partition("x")
            width, height = int(w), int(h)
    except ValueError:
        raise UsageError(f"--scene {text!r}: expected SIZE:FACES with SIZE one of "
                         f"{', '.join(NAMED_SIZES)} or WxH, e.g. 1080p:1 or 640x360:2")
    if faces < 1 or faces > 16 or width < 64 or height < 64 or width % 2 or height % 2:
        raise UsageError(f"--scene {text!r}: 1 to 16 faces, an even frame size of at least 64 px")
    return Scene(width, height, faces)


def default_face_image() -> Path | None:
    """The face the bench synthesises its clips from: an FFHQ-aligned 512² face shipped with
    the package (``gpen_video/data/gate``); None if the package data is missing."""
    path = Path(__file__).resolve().parents[1] / "data" / "gate" / DEFAULT_FACE
    return path if path.is_file() else None


def load_face(path: Path) -> np.ndarray:
    """The face photo as square RGB uint8 (centre-cropped if not square).

    Raises:
        InputError: unreadable.
    """
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"--face {path}: not a readable image")
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return cv2.cvtColor(image[y0:y0 + side, x0:x0 + side], cv2.COLOR_BGR2RGB)


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour waves plus fixed fine grain, 64 px larger than the frame (for panning)."""
    import cv2

    h, w = height + 64, width + 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([100 + 50 * np.sin(xx / 97.0 + 0.3) * np.cos(yy / 131.0),
                     115 + 40 * np.cos(xx / 151.0 - yy / 83.0),
                     95 + 45 * np.sin((xx + 2 * yy) / 173.0)], -1)
    grain = rng.normal(0.0, 6.0, (h // 2, w // 2, 3)).astype(np.float32)
    base += cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(base, 0, 255).astype(np.uint8)


def _oval_alpha(side: int) -> np.ndarray:
    import cv2

    alpha = np.zeros((side, side), np.float32)
    cv2.ellipse(alpha, (side // 2, int(side * 0.52)), (int(side * 0.40), int(side * 0.47)), 0, 0,
                360, 1.0, -1)
    k = max(3, side // 16) | 1
    return cv2.GaussianBlur(alpha, (k, k), 0)


def _layout(scene: Scene) -> list[tuple[float, float, float]]:
    """(centre x, centre y, photo side) of each face in a grid."""
    cols = math.ceil(math.sqrt(scene.faces))
    rows = math.ceil(scene.faces / cols)
    cell_w, cell_h = scene.width / cols, scene.height / rows
    side = 0.8 * min(cell_w, cell_h)
    return [((i % cols + 0.5) * cell_w, (i // cols + 0.5) * cell_h, side)
            for i in range(scene.faces)]


def render_frame(photo: np.ndarray, background: np.ndarray, scene: Scene, index: int,
                 fps: float = 25.0) -> np.ndarray:
    """Frame ``index`` of the scene (RGB uint8)."""
    import cv2

    t = index / fps
    pan = int(round(32 + 30 * math.sin(0.6 * t)))
    frame = background[pan:pan + scene.height, pan // 2:pan // 2 + scene.width].astype(np.float32)
    alpha0 = _oval_alpha(photo.shape[0])
    src = photo.shape[0]
    for i, (cx, cy, side) in enumerate(_layout(scene)):
        phase = 1.7 * i
        x = cx + 0.08 * side * math.sin(1.3 * t + phase)
        y = cy + 0.06 * side * math.cos(0.9 * t + phase)
        degrees = 8.0 * math.sin(0.7 * t + phase)
        scale = side / src * (1.0 + 0.08 * math.sin(0.5 * t + phase))
        m = cv2.getRotationMatrix2D(((src - 1) / 2, (src - 1) / 2), degrees, scale)
        m[:, 2] += np.array([x, y]) - np.array([(src - 1) / 2, (src - 1) / 2])
        size = (scene.width, scene.height)
        face = cv2.warpAffine(photo, m, size, flags=cv2.INTER_AREA if scale < 1 else
                              cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(alpha0, m, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)[:, :, None]
        frame = frame * (1.0 - alpha) + face.astype(np.float32) * alpha
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def synthesize_clip(face: Path, scene: Scene, frames: int, path: Path, fps: int = 25,
                    seed: int = 0) -> Path:
    """Write the scene's first ``frames`` frames to ``path`` (H.264 MP4). Returns ``path``."""
    import av

    photo = load_face(face)
    background = _background(scene.width, scene.height, np.random.default_rng(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps,
                                options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, "yuv420p"
        for i in range(frames):
            image = render_frame(photo, background, scene, i, fps)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.replace(path)
    return path
