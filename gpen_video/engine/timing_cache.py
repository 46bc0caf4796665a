"""A TensorRT timing cache file shared by every builder on a machine (or a shared folder).

TensorRT times candidate kernels ("tactics") for every layer while it builds an engine; a timing
cache keeps those measurements, so the next build of the same layers — another precision, another
profile, the same model on another worker — skips them. Builders load the file before building
and, afterwards, merge what they learnt into it: read the file, combine, write a temporary file,
rename; all under the file's lock, so concurrent builders never lose each other's entries and a
reader never sees a half-written file.

The file format belongs to TensorRT; this module only moves bytes. :meth:`TimingCacheFile.update`
takes the merge as a function of the current bytes, which :mod:`gpen_video.engine.build`
implements with ``ITimingCache.combine``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpen_video.engine.artifact import read_verified, write_artifact
from gpen_video.engine.locking import DEFAULT_TIMEOUT_S, lock_for


class TimingCacheFile:
    """One timing cache file; reads and read-modify-writes are serialised by a file lock."""

    def __init__(self, path: Path | str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def read(self) -> bytes:
        """The current bytes (``b""`` when there is no cache yet)."""
        with lock_for(self.path, self.timeout):
            return self._read_unlocked()

    def update(self, merge: Callable[[bytes], bytes]) -> bytes:
        """Replace the file by ``merge(current_bytes)`` atomically, under the lock.

        ``merge`` gets ``b""`` when there is no file yet. Returns what was written.
        """
        with lock_for(self.path, self.timeout):
            data = merge(self._read_unlocked())
            write_artifact(self.path, data)
            return data

    def _read_unlocked(self) -> bytes:
        return read_verified(self.path) or b""  # damaged: named once, removed, started afresh
