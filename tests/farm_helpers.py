"""Helpers for the render-farm tests: a small clip with faces and audio, made in-process, and the
command-line options every farm test renders with (identity restorer, real MobileNet detector).

The clip is built so that chunk borders "do not matter": a face is on screen only in frames
5–17 of every 24, so with chunks of 24 frames and an overlap of 4 no face track crosses a chunk
border or its overlap, and with ``detect batch`` 4 the detector sees the same frame batches in a
chunk as in a single-process run. Frames are then expected to be bit-identical.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from gpen_video.errors import TransientError
from tests.geometry import face_photo
from tests.media_helpers import AudioSpec, VideoSpec, make_video, stream_packets
from tests.pipeline_helpers import face_scene

REPO = Path(__file__).resolve().parents[1]
PERIOD = 24  # frames per chunk in the farm tests
OVERLAP = 4
FACE_FRAMES = range(5, 18)  # frames (mod PERIOD) with a face


def face_clip(path: Path, testdata: Path, n: int = 72, size: tuple[int, int] = (160, 224),
              rate: int = 24, audio_seconds: float | None = None) -> Path:
    """H.264 in .mov with an AAC track (priming included): a textured moving background and,
    in frames 5–17 of every :data:`PERIOD`, a real face 96 px across drifting right."""
    photo = face_photo(testdata)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = []
    for i in range(n):
        bg = np.stack([90 + 40 * np.sin(xx / 23 + i / 7), 110 + 30 * np.cos(yy / 17),
                       100 + 20 * np.sin((xx + yy) / 31)], -1).astype(np.uint8)
        if i % PERIOD in FACE_FRAMES:
            images.append(face_scene(photo, 96, 5.0, (h, w), (w / 2 + i % PERIOD, h / 2),
                                     background=bg))
        else:
            images.append(bg)
    seconds = audio_seconds if audio_seconds is not None else n / rate + 0.5
    return make_video(path, VideoSpec(images=images, codec="libx264", pix_fmt="yuv420p",
                                      rate=Fraction(rate), audio=[AudioSpec(seconds=seconds)]))


def render_args(testdata: Path) -> list[str]:
    """Options of every farm-test render: identity restorer, real MobileNet detector, CPU,
    full-frame detection: the farm tests compare chunked renders with one-process ones pixel for
    pixel, and a tracked face's window follows its track's prediction, which a chunk rebuilds
    from its own lead frames to within a small fraction of a pixel, not exactly (RESULTS.md,
    "`--workers N` and farm chunks")."""
    weights = testdata / "weights" / "detection_mobilenet0.25_Final.pth"
    return ["--backend", "identity", "--device", "cpu", "--detector", "mobile0.25",
            "--detector-weights", str(weights), "--progress", "none", "--detect", "full"]


def lossless(path: Path) -> list[str]:
    """``--codec ffv1 --pix-fmt bgr0`` (exact RGB) for ``path`` (.mkv)."""
    assert path.suffix == ".mkv"
    return ["--codec", "ffv1", "--pix-fmt", "bgr0"]


def audio_packets(path: Path) -> list[tuple[bytes, Fraction | None]]:
    """The first audio track's packets: (bytes, pts in seconds)."""
    tracks = stream_packets(path, "audio")
    assert tracks, f"{path} has no audio"
    return tracks[0]


def env() -> dict[str, str]:
    """Environment for a ``python -m gpen_video`` subprocess run from the repository."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def gpen_video(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run ``gpen-video ARGS`` in a subprocess (``python -m gpen_video``)."""
    return subprocess.run([sys.executable, "-m", "gpen_video", *map(str, args)], cwd=REPO,
                          env=env(), capture_output=True, text=True, timeout=timeout, **kw)


@dataclass(frozen=True)
class FailChunk:
    """A chunk hook (``run_farm(chunk_hook=...)``) that makes a farm worker fail for real.

    Runs in the Ray worker's process (pickled with the worker's arguments). ``kind`` "exit": the
    worker process ends itself (``os._exit``) halfway through chunk ``chunk``; "error": a
    transient error before the chunk starts. On the first ``attempts`` attempts (None: all).
    """

    kind: str
    chunk: int
    attempts: int | None = 1

    def __call__(self, chunk, attempt: int, frames: int, segment=None) -> None:
        if chunk.index != self.chunk or (self.attempts is not None and attempt > self.attempts):
            return
        if self.kind == "error" and frames == 0:
            raise TransientError(f"injected transient failure in chunk {chunk.index} "
                                 f"(attempt {attempt}; a test's chunk hook)")
        if self.kind == "exit" and frames >= max(1, chunk.count // 2):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(17)


@dataclass(frozen=True)
class CorruptSegment:
    """A chunk hook that damages chunk ``chunk``'s segment once it is written (on the first
    ``attempts`` attempts): ``size`` bytes overwritten inside the packet of its ``frame``-th
    frame, as a disk or a copy could. For ``run_farm`` and ``run_workers``."""

    chunk: int
    frame: int = 2
    attempts: int = 1
    size: int = 64

    def __call__(self, chunk, attempt: int, frames: int, segment=None) -> None:
        if segment is None or frames != -1 or chunk.index != self.chunk \
                or attempt > self.attempts:
            return
        corrupt_packet(Path(segment), self.frame, self.size)


def corrupt_packet(path: Path, frame: int, size: int = 64) -> int:
    """Overwrite ``size`` bytes in the middle of the ``frame``-th video packet of ``path``
    (decode order) with other bytes; returns the packet's pts."""
    import av

    with av.open(str(path)) as c:
        packets = [(p.pos, p.size, p.pts) for p in c.demux(c.streams.video[0])
                   if p.dts is not None and p.size]
    pos, length, pts = packets[frame]
    start = pos + max(0, length // 2 - size // 2)
    with open(path, "r+b") as f:
        f.seek(start)
        old = f.read(min(size, length))
        f.seek(start)
        f.write(bytes((b + 97) % 256 for b in old))
    return pts


def inject(monkeypatch, hook: FailChunk) -> None:
    """Make ``gpen-video farm`` (the CLI, in this process) pass ``hook`` to its workers."""
    from gpen_video.farm import ray_runner

    monkeypatch.setattr(ray_runner, "run_farm",
                        functools.partial(ray_runner.run_farm, chunk_hook=hook))
