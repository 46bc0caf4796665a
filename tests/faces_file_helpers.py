"""A clip with two real faces for the faces-file tests, and the in-process runs they compare.

Face 1 (``gpen_ffhq-10_00004.png``) moves left to right along the top from frame 0; face 2
(``gpen_val_hq_ffhq_00000.png``) enters at frame ``LATE`` on the bottom right and moves left.
Their pasted crops never overlap (≥ 40 px apart), so each track's pixels can be told apart.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.pipeline_helpers import face_scene, write_clip

SIZE = (288, 512)  # H, W
FRAMES = 36
LATE = 10  # face 2's first frame (found by the scan at frame 12)
FACE_PX = 100


def two_faces_frames(testdata: Path, frames: int = FRAMES, late: int = LATE) -> list[np.ndarray]:
    """RGB frames: face 1 throughout, face 2 from frame ``late``."""
    images = testdata / "images"
    one = cv2.cvtColor(cv2.imread(str(images / "gpen_ffhq-10_00004.png")), cv2.COLOR_BGR2RGB)
    two = cv2.cvtColor(cv2.imread(str(images / "gpen_val_hq_ffhq_00000.png")),
                       cv2.COLOR_BGR2RGB)
    h, w = SIZE
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        image = face_scene(one, FACE_PX, 4.0 * np.sin(i / 7), SIZE, (70 + 180 * t, 72))
        if i >= late:
            u = (i - late) / max(1, frames - 1 - late)
            image = face_scene(two, FACE_PX, -3.0, SIZE, (440 - 150 * u, 214), background=image)
        out.append(image)
    return out


def two_faces_clip(testdata: Path, path: Path, frames: int = FRAMES) -> Path:
    """:func:`two_faces_frames` as a lossless clip (decoded frames are exactly these)."""
    return write_clip(path, two_faces_frames(testdata, frames))


def render(options, detector=None) -> dict[int, list]:
    """Run the pipeline in this process (one torch thread, serial: deterministic); the pasted
    faces per output frame."""
    import torch

    from gpen_video import pipeline

    seen: dict[int, list] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline.run(options, detector=detector, observer=lambda i, f: seen.__setitem__(i, f),
                     serial=True)
    finally:
        torch.set_num_threads(before)
    return seen


def frames_of(path: Path) -> list[np.ndarray]:
    from gpen_video.media import VideoSource

    with VideoSource(path) as source:
        return [f.image for f in source]
