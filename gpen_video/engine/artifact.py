"""Cached artifacts that heal: written atomically with a content hash beside them, checked on
every load, removed and rebuilt when damaged.

Every file the engine cache keeps (ONNX exports and their precision rewrites, TensorRT plans and
their gate reports, torch quality-gate verdicts, timing caches, and any new cache) goes through
this module:

* :func:`write_artifact` ``(path, data | writer)`` writes the content to a temporary file beside
  ``path`` (``writer(tmp_path)`` for content made by another library, e.g. ``torch.onnx.export``),
  then its hash ``PATH.sha256`` (JSON: ``{"sha256": …, "bytes": …}``, itself written by temp file
  + rename), then renames the content into place. A process killed at any point leaves either
  the old state, or a hash without its file (an orphan), never a file that passes the check with
  other content.
* :func:`damage` ``(path)`` says what is wrong with a cached file, or None: missing, empty (0
  bytes), truncated (fewer bytes than hashed), too long, garbled (same size, another hash), or
  without its hash (a file the cache cannot vouch for: written by hand, or by a gpen-video from
  before hashes).
* :func:`check_artifact` ``(path)`` → True when the file is there and sound; when it is damaged it
  logs **one** warning naming the file and why, removes it and its hash, and returns False: the
  caller rebuilds it (under the lock it already takes for building). Call it under that lock;
  check with :func:`damage` (no side effects) before taking it, so a read-only cache folder that
  holds a sound file is used as it is, with no lock and no write.
* :func:`read_verified` ``(path)`` → the bytes of a small artifact (a JSON verdict, a timing
  cache) when sound, else None after the same warning and removal.
* :func:`gpen_video.engine.clean.cache_problems` ``(folder)`` lists damaged artifacts and
  orphaned hashes and temporary files, for ``gpen-video engine list`` and ``engine clean``.

The hash is sha256 over the file's bytes; checking costs one read of the file (≈ 1 GB/s here,
about 0.3 s for a GPEN-BFR-512 export), paid once per load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from gpen_video.errors import OutputError

log = logging.getLogger("gpen_video.engine")

HASH_SUFFIX = ".sha256"
PART_SUFFIX = ".part"  # temporary files of writes in progress (or of killed writers)


def hash_path(path: Path | str) -> Path:
    """``PATH.sha256``: where an artifact's hash is kept."""
    path = Path(path)
    return path.with_name(path.name + HASH_SUFFIX)


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_artifact(path: Path | str, content: bytes | Callable[[Path], None]) -> Path:
    """Write a cached artifact and its hash atomically (module docstring); returns ``path``.

    ``content``: the bytes, or ``writer(tmp_path)`` that writes the file at ``tmp_path``.

    Raises:
        OSError: the folder cannot be written (callers turn it into their own message).
    """
    path = Path(path)

    def fill(tmp: Path) -> None:
        if callable(content):
            content(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fill(tmp)
        record = json.dumps({"sha256": file_sha256(tmp), "bytes": tmp.stat().st_size}).encode()
        _write_atomically(hash_path(path), lambda t: t.write_bytes(record))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_hash(path: Path) -> dict | None:
    try:
        record = json.loads(hash_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str) \
            or not isinstance(record.get("bytes"), int):
        return None
    return record


def damage(path: Path | str) -> str | None:
    """What is wrong with the cached file ``path`` (module docstring), or None when sound."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    record = _read_hash(path)
    if record is None:
        if hash_path(path).exists():
            return f"its hash file {hash_path(path).name} is damaged"
        return f"no hash beside it ({hash_path(path).name} is missing)"
    if size == 0:
        return "empty (0 bytes)"
    if size < record["bytes"]:
        return f"truncated ({size} of {record['bytes']} bytes)"
    if size > record["bytes"]:
        return f"longer than written ({size} bytes, {record['bytes']} hashed)"
    try:
        if file_sha256(path) != record["sha256"]:
            return "garbled (its content does not match its hash)"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def remove_artifact(path: Path | str) -> None:
    """Delete an artifact and its hash (missing ones are fine).

    Raises:
        OutputError: they cannot be deleted (a read-only cache folder).
    """
    path = Path(path)
    for p in (path, hash_path(path)):
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"the damaged cached file {p} cannot be removed "
                              f"({exc.strerror or exc}): delete it by hand, or pass another "
                              "folder with --engine-dir (or set GPEN_VIDEO_ENGINES)") from None


def check_artifact(path: Path | str) -> bool:
    """True when ``path`` exists and is sound; a damaged one is named in one warning, removed
    with its hash, and False returned (the caller rebuilds it). False, silently, when missing.

    Raises:
        OutputError: it is damaged and cannot be removed.
    """
    path = Path(path)
    why = damage(path)
    if why is None:
        return True
    if why == "missing":
        return False
    log.warning("cached file %s is damaged: %s; removing it and building it again", path, why)
    remove_artifact(path)
    return False


def read_verified(path: Path | str) -> bytes | None:
    """The bytes of a sound artifact; None when missing or damaged (then warned about and
    removed, as :func:`check_artifact` does; a damaged one that cannot be removed is warned
    about and left)."""
    path = Path(path)
    try:
        if not check_artifact(path):
            return None
    except OutputError as exc:
        log.warning("%s", exc)
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None
