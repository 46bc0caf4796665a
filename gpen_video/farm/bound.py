"""How many pipeline processes one machine can run at once: the bound on ``--workers``.

Three limits; the smallest wins, whatever was asked (``auto`` included):

* **cores**: at most one process per CPU core (each runs decode, tracking and encode on the
  CPU even when the network is on a GPU), and with GPUs at most
  :data:`~gpen_video.farm.local.WORKERS_PER_GPU` per GPU;
* **memory**: at most ``MemAvailable × MEMORY_SHARE ÷ MEMORY_PER_WORKER`` — each process loads
  its own restorer and detector and holds its own frame queues; :data:`MEMORY_PER_WORKER` is
  the peak RSS of one process measured on a 2-core CPU machine with the default model
  (GPEN-BFR-512, onnxruntime, 1080p: ``benchmarks/RESULTS.md``, "--workers bound"), so the
  bound is conservative for smaller models (``--backend identity``:
  :data:`IDENTITY_WORKER_MEMORY`); ``GPEN_VIDEO_WORKER_MEMORY`` (GB) overrides it;
* **frames**: every process gets a chunk of at least :data:`MIN_CHUNK_FRAMES` frames: each
  chunk also decodes and detects its warm-up frames (up to ~90 with the default tracking,
  :func:`gpen_video.farm.warmup.chunk_margins`) and loads its own models, so a process with a
  frame or two to render (what ``--workers 999`` on 24 frames did: 24 processes, 20× slower
  than one) is all overhead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# bytes; measured here, GPEN-BFR-512 (random weights, onnxruntime, its export cached), 1080p,
# a face in every frame: peak RSS of a single run 3.50 GB, of one --workers process 4.04 GB
# (8.05 GB for the whole 2-worker job, driver included); rounded up to cover the driver
MEMORY_PER_WORKER = 4.2e9
# the same with --backend identity (detector, decode, encode and queues only): single run
# 1.18 GB, one --workers process 1.50 GB (2.76 GB for the 2-worker job)
IDENTITY_WORKER_MEMORY = 1.6e9
MEMORY_SHARE = 0.8  # of the memory available when the job starts
MIN_CHUNK_FRAMES = 12  # half a second at 24 fps


@dataclass(frozen=True)
class Bound:
    """The most processes this job may use here, and the limit that set it."""

    count: int
    by_cores: int
    by_memory: int
    by_frames: int
    reason: str

    def explain(self, asked: int | None) -> str:
        """One line for the user when the bound lowers what was asked."""
        what = "auto" if asked is None else str(asked)
        return f"--workers {what}: using {self.count} process(es): {self.reason}"


def available_memory() -> int | None:
    """Bytes of memory available to new processes (``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def worker_memory(backend: str = "auto", env: dict[str, str] | None = None) -> float:
    """Bytes one worker needs: ``GPEN_VIDEO_WORKER_MEMORY`` (GB), else the measured figure for
    ``backend`` (:data:`IDENTITY_WORKER_MEMORY` for ``identity``, :data:`MEMORY_PER_WORKER` for
    any network)."""
    default = IDENTITY_WORKER_MEMORY if backend == "identity" else MEMORY_PER_WORKER
    text = (env if env is not None else os.environ).get("GPEN_VIDEO_WORKER_MEMORY")
    try:
        value = float(text) * 1e9 if text else default
    except ValueError:
        value = default
    return value if value > 0 else default


def worker_bound(cores: int, gpus: int, frames: int, memory: int | None,
                 per_worker: float = MEMORY_PER_WORKER, per_gpu: int = 4) -> Bound:
    """The bound (module docstring) for a job of ``frames`` frames on ``cores`` cores and
    ``gpus`` GPUs with ``memory`` bytes available."""
    by_cores = max(1, cores)
    core_text = f"one per core ({cores} cores)"
    if gpus >= 1:
        by_cores = max(1, min(by_cores, per_gpu * gpus))
        core_text = f"one per core and at most {per_gpu} per GPU ({cores} cores, {gpus} GPU(s))"
    if memory is None:
        by_memory, mem_text = by_cores, "memory unknown"
    else:
        by_memory = max(1, int(memory * MEMORY_SHARE // per_worker))
        mem_text = (f"{by_memory} fit in {MEMORY_SHARE:.0%} of the {memory / 1e9:.1f} GB "
                    f"available at {per_worker / 1e9:.2f} GB each")
    chunk = MIN_CHUNK_FRAMES
    by_frames = max(1, frames // chunk)
    frame_text = f"{frames} frames make {by_frames} chunk(s) of at least {chunk}"
    count = min(by_cores, by_memory, by_frames)
    limits = []
    if count == by_cores:
        limits.append(core_text)
    if count == by_memory:
        limits.append(mem_text)
    if count == by_frames:
        limits.append(frame_text)
    return Bound(count, by_cores, by_memory, by_frames, "; ".join(limits))
