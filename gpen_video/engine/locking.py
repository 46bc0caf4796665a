"""File locks shared between processes, and atomic writes.

Locks are ``filelock`` locks (a dependency of torch, so always present) on ``NAME.lock`` beside
the file they protect: a render-farm node running several workers builds each engine once, and
workers merging a timing cache never lose each other's entries.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from gpen_video.errors import TransientError

DEFAULT_TIMEOUT_S = 3600.0  # an engine build can take many minutes


def lock_for(path: Path | str, timeout: float = DEFAULT_TIMEOUT_S) -> "_Lock":
    """A context manager holding the inter-process lock of ``path`` (``path.lock``).

    Raises (on enter):
        TransientError: another process held it for more than ``timeout`` seconds.
    """
    return _Lock(Path(path), timeout)


class _Lock:
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=timeout)

    def __enter__(self) -> "_Lock":
        try:
            self._lock.acquire()
        except Timeout:
            raise TransientError(f"{self.path} is locked by another process (waited "
                                 f"{self._lock.timeout:.0f} s); retry, or delete "
                                 f"{self.path}.lock if no gpen-video process is running") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
