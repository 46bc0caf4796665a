"""Plates made in the test: image sequences, stills and scene-linear EXR frames with a real face.

Everything is written with PyAV, numpy and OpenEXR at small sizes (a face of ~150 px in a
frame of ~300 px, a few frames), so each test runs in seconds on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gpen_video.media.stills import Picture, read_picture, write_picture
from tests.geometry import face_photo
from tests.pipeline_helpers import face_scene

CORNER = 24  # px: the four corner patches checked bit for bit (far from the face)
FRAME_HW = (288, 320)


def face_frame(testdata: Path, shift: float = 0.0) -> np.ndarray:
    """An 8-bit RGB frame (288×320) with a real face of 150 px near the centre."""
    return face_scene(face_photo(testdata), 150, 4.0, FRAME_HW, (160.0 + shift, 140.0))


def corners(image: np.ndarray, size: int = CORNER) -> list[np.ndarray]:
    """The four corner patches of an image (H×W[×C])."""
    return [image[:size, :size], image[:size, -size:], image[-size:, :size],
            image[-size:, -size:]]


def write_sequence(folder: Path, name: str, frames: list[Picture], first: int = 1001,
                   skip: tuple[int, ...] = (), pix_fmt: str | None = None) -> list[Path]:
    """Write ``frames`` as ``folder/name % number`` from ``first`` on (numbers in ``skip``
    are left out, the frames keep their positions)."""
    out = []
    for k, picture in enumerate(frames):
        number = first + k
        if number in skip:
            continue
        path = folder / (name % number)
        write_picture(path, picture, pix_fmt=pix_fmt)
        out.append(path)
    return out


def deep_picture(image8: np.ndarray, alpha: bool = True, seed: int = 0) -> Picture:
    """A 16-bit RGB(A) picture from an 8-bit frame, low bits and alpha filled with noise (so a
    rounding anywhere shows)."""
    rng = np.random.default_rng(seed)
    rgb = image8.astype(np.uint16) * 257 + rng.integers(0, 200, image8.shape).astype(np.uint16)
    a = rng.integers(0, 65536, image8.shape[:2]).astype(np.uint16) if alpha else None
    return Picture(rgb, a)


def acescg_plate(testdata: Path, n: int = 3, half: bool = True, seed: int = 0
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` scene-linear ACEScg frames (RGB, alpha) built from the face frame: the display
    encoding's exact inverse of the 8-bit image, then values no display encoding holds —
    highlights of 1.672 and 3.0, negatives — in the corners and on the forehead."""
    from gpen_video.media.scene_linear import DisplayEncoding

    enc = DisplayEncoding.create("ACEScg", {}, env={})
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        display = face_frame(testdata, shift=k).astype(np.float32) / 255.0
        lin = enc.from_display(display)
        lin[:CORNER, :CORNER] = 1.672
        lin[-CORNER:, -CORNER:] = -0.05
        lin[:CORNER, -CORNER:, 0] = 7.5
        lin[112:118, 150:170] = 3.0  # a specular highlight inside the face
        dtype = np.float16 if half else np.float32
        alpha = rng.random(lin.shape[:2]).astype(dtype)
        out.append((lin.astype(dtype), alpha))
    return out


def write_exr_sequence(folder: Path, frames: list[tuple[np.ndarray, np.ndarray]],
                       first: int = 1001, compression: str = "PIZ_COMPRESSION",
                       fps: tuple[int, int] = (25, 1)) -> list[Path]:
    """Write ACEScg frames as ``shot.NNNN.exr`` with header attributes a pipeline must keep
    (compression, chromaticities, framesPerSecond, timeCode, owner, a custom string) and an
    extra ``depth.Z`` channel."""
    import OpenEXR

    paths = []
    for k, (rgb, alpha) in enumerate(frames):
        tc = OpenEXR.TimeCode()
        tc.hours, tc.minutes, tc.seconds, tc.frame = 1, 0, 0, k
        header = {"compression": getattr(OpenEXR, compression), "type": OpenEXR.scanlineimage,
                  "chromaticities": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168,
                                     0.33767),
                  "framesPerSecond": fps, "timeCode": tc, "owner": "gpen-video tests",
                  "shot_note": f"plate frame {first + k}"}
        channels = {c: np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")}
        channels["A"] = alpha
        channels["depth.Z"] = np.full(alpha.shape, 10.0 + k, np.float32)
        path = folder / f"shot.{first + k:04d}.exr"
        OpenEXR.File(header, channels).write(str(path))
        paths.append(path)
    return paths


def read_exr(path: Path) -> tuple[dict, dict]:
    """(header, channels) of an EXR as OpenEXR reads them."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return dict(f.header()), {k: v.pixels.copy() for k, v in f.channels().items()}


__all__ = ["CORNER", "acescg_plate", "corners", "deep_picture", "face_frame", "read_exr",
           "read_picture", "write_exr_sequence", "write_sequence"]
