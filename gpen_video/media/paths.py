"""Output-path safety: never the input, never overwrite unasked, never leave a partial file.

Every output is written to a temporary name beside the target (same folder, so the final
``os.replace`` is an atomic rename on one filesystem) and renamed only when complete. Image
sequences are written into a temporary folder beside the target and moved file by file.

Partial outputs: ``.STEM.gpen-partial-PID-TOKEN.EXT`` (a folder ``.STEM.gpen-partial-PID-XXXX``
for image sequences). The writing process holds an exclusive ``flock`` on it for its whole life
and registers it with :mod:`gpen_video.shutdown`, which removes it on any exit. A process killed
outright (SIGKILL, power loss) cannot clean up, but its lock dies with it: the next partial
created for the same target removes the partials of that target whose lock is free and whose
owner is gone (:func:`remove_stale_partials`): files and folders alike, so a single run also
sweeps the segment folder a killed ``--workers`` run left (:func:`sweep_partials`). A live run's
partial is never touched: its lock is held.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from gpen_video import shutdown
from gpen_video.errors import DiskFullError, GpenVideoError, OutputError

TEMP_TAG = ".gpen-partial-"
SPACE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "the file outgrew the file-size limit"}
_FRESH_SECONDS = 10.0  # a lock-free partial this young with a live owner pid is being created


def same_file(a: str | Path, b: str | Path) -> bool:
    """True if two paths name the same file (symlinks and hard links resolved)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(output: str | Path, input: str | Path | None = None,
                 overwrite: bool = False, image_sequence: bool = False) -> Path:
    """Validate an output path before any work is done; returns it as a Path.

    Raises:
        OutputError: output is the input; the output exists and ``overwrite`` is False; the
            folder is missing, not a folder, or not writable; the output is a folder.
    """
    output = Path(output)
    folder = output.parent if str(output.parent) else Path(".")
    if input is not None and not image_sequence and same_file(output, input):
        raise OutputError(f"output {output} is the input file: choose another output path")
    if not folder.exists():
        raise OutputError(f"output folder {folder} does not exist: create it first")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable (read-only or no "
                          "permission): choose another output folder")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder: give a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"output {output} already exists: use -y (--overwrite) to replace it")
    return output


def _size_text(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def write_error(exc: BaseException, folder: Path, what: str, hint: str = "") -> GpenVideoError:
    """The product's error for a write that failed with ``exc`` in ``folder``.

    ENOSPC, EDQUOT and EFBIG give a :class:`~gpen_video.errors.DiskFullError` (exit 75: retry
    once there is space) naming the folder and its free space; anything else an
    :class:`~gpen_video.errors.OutputError` (exit 2). ``what``: the start of the line, e.g.
    ``writing out.mp4 failed``; ``hint``: what to do, for the other errors.
    """
    reason = SPACE_ERRNOS.get(getattr(exc, "errno", None))
    if reason is None and getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{what}: permission denied in {folder} (it is read-only, or its "
                           "permissions changed while gpen-video ran); make it writable or "
                           "choose another output folder, then run again (the next run to this "
                           "output removes any partial file left there)")
    if reason is None:
        detail = getattr(exc, "strerror", None) or str(exc)
        return OutputError(f"{what}: {detail}{'; ' + hint if hint else ''}")
    try:
        free = f"{_size_text(shutil.disk_usage(folder).free)} free there"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{what}: {reason} in {folder} ({free}); free some space or choose "
                         "another output folder, then retry (nothing was written)")


def _folder_of(output: Path) -> Path:
    return output.parent if str(output.parent) else Path(".")


def _partial_pattern(output: Path, sequence: bool) -> re.Pattern[str]:
    """Names of the partials of ``output`` (any owner), with the owner's pid as group 1."""
    if sequence:
        stem = output.stem.replace("%", "")
        return re.compile(re.escape(f".{stem}{TEMP_TAG}") + r"(\d+)-[a-z0-9_]+")
    return re.compile(re.escape(f".{output.stem}{TEMP_TAG}") + r"(\d+)-[0-9a-f]{8}"
                      + re.escape(output.suffix))


def _lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``; None if another process
    holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(output: Path, sequence: bool = False) -> list[Path]:
    """Delete the partial outputs of ``output`` left by processes that are gone; returns them.

    A partial is stale when nobody holds its lock and its owner (the pid in its name) is no
    longer running, or is (a reused pid) but the file is older than a few seconds. Partials of
    other targets in the folder are not looked at.
    """
    folder = _folder_of(output)
    pattern = _partial_pattern(output, sequence)
    removed = []
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return removed
    for name in names:
        path = folder / name
        pid = int(pattern.fullmatch(name).group(1))
        if pid == os.getpid() and os.fspath(path) in map(os.fspath, shutdown.tracked_temps()):
            continue
        fd = _lock(path)
        if fd is None:
            continue  # a live run holds it
        try:
            age = time.time() - path.stat().st_mtime
            if _pid_alive(pid) and pid != os.getpid() and age < _FRESH_SECONDS:
                continue  # just created by a live process that has not locked it yet
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def sweep_partials(output: Path) -> list[Path]:
    """Every dead partial of ``output``, whatever kind of run left it: a single run's file, an
    image sequence's or a ``--workers`` run's segment folder (a live run's are kept)."""
    return remove_stale_partials(output) + remove_stale_partials(output, sequence=True)


def remove_stale_partials_in(folder: Path) -> list[Path]:
    """:func:`remove_stale_partials` for every target in ``folder`` (a farm's own segment
    folder)."""
    removed = []
    pattern = re.compile(r"\.(.*)" + re.escape(TEMP_TAG) + r"\d+-[0-9a-z_]+(\.[^.]*)?")
    for name in sorted(os.listdir(folder)) if Path(folder).is_dir() else []:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        stem, suffix = match.group(1), match.group(2) or ""
        is_dir = (Path(folder) / name).is_dir()
        removed += remove_stale_partials(Path(folder) / f"{stem}{suffix}", sequence=is_dir)
    return removed


def _hold(path: Path, fd: int) -> Path:
    """Lock ``path`` through ``fd`` for its life and register it for removal on exit.

    Callers create the partial and hold it inside one :func:`gpen_video.shutdown.
    deferred_signals` block: a Ctrl-C or SIGTERM between the two steps would leave an
    unregistered partial that no exit path removes (until the next run to the same target).
    """
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    shutdown.track_temp(path, fd)
    return path


def temp_file_for(output: Path) -> Path:
    """Create (empty, locked, registered) and return a hidden temporary file beside ``output``
    with its suffix, after removing the stale partials of ``output``.

    Raises:
        OutputError: the folder cannot be written.
    """
    folder = _folder_of(output)
    sweep_partials(output)
    for _ in range(100):
        name = folder / f".{output.stem}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}" \
                        f"{output.suffix}"
        with shutdown.deferred_signals():  # created ⇒ registered (see _hold)
            try:
                # mode 0o666 minus the umask: the renamed output gets the usual permissions
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise write_error(exc, folder, f"cannot write in {folder}",
                                  "choose another output folder") from None
            return _hold(name, fd)
    raise OutputError(f"cannot create a temporary file in {folder}")


def temp_dir_for(output: Path) -> Path:
    """Create (locked, registered) and return a hidden temporary folder beside ``output`` (for
    image sequences), after removing the stale ones of ``output``.

    Raises:
        OutputError: the folder cannot be written.
    """
    folder = _folder_of(output)
    sweep_partials(output)
    with shutdown.deferred_signals():  # created ⇒ registered (see _hold)
        try:
            name = Path(tempfile.mkdtemp(
                prefix=f".{output.stem.replace('%', '')}{TEMP_TAG}{os.getpid()}-", dir=folder))
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise write_error(exc, folder, f"cannot write in {folder}",
                              "choose another output folder") from None
        return _hold(name, fd)


def release(path: Path | None) -> None:
    """Forget a partial that was renamed into place or removed, and drop its lock."""
    if path is None:
        return
    fd = shutdown.untrack_temp(path)
    if fd is not None:
        os.close(fd)


def finalize_file(temp: Path, output: Path, overwrite: bool) -> None:
    """Rename the finished temporary file onto ``output``.

    Raises:
        OutputError: ``output`` appeared meanwhile and ``overwrite`` is False (temp removed).
    """
    if not overwrite and output.exists():
        remove_quietly(temp)
        raise OutputError(f"output {output} appeared while writing: use -y (--overwrite) to "
                          "replace it")
    os.replace(temp, output)
    release(temp)


def finalize_sequence(temp_dir: Path, output_folder: Path, overwrite: bool) -> list[Path]:
    """Move every file of a finished image sequence from ``temp_dir`` into ``output_folder``.

    All names are checked before anything moves, so a refusal moves nothing.

    Raises:
        OutputError: a target file exists and ``overwrite`` is False (temp folder removed).
    """
    names = sorted(p.name for p in temp_dir.iterdir())
    if not overwrite:
        clash = [n for n in names if (output_folder / n).exists()]
        if clash:
            remove_quietly(temp_dir)
            raise OutputError(f"{len(clash)} output file(s) already exist (first: "
                              f"{output_folder / clash[0]}): use -y (--overwrite) to replace them")
    moved = []
    for name in names:
        target = output_folder / name
        os.replace(temp_dir / name, target)
        moved.append(target)
    remove_quietly(temp_dir)
    return moved


def remove_quietly(path: Path | None) -> None:
    """Delete a temporary file or folder (and release its lock), ignoring errors."""
    if path is None:
        return
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    except OSError:
        pass
    release(path)


class PartialOutput:
    """An output written under a temporary name and renamed by ``close`` (module docstring).

    Gives its subclasses (the video and image-sequence sinks) the rest of the life cycle:
    ``abort`` (stop, delete the partial), ``remove_partial`` (delete the partial only: for a
    caller giving up while another thread may still be writing), use as a context manager
    (closed on success, aborted on an exception) and removal when dropped unclosed. Subclasses
    set ``_temp`` and ``_closed`` and free what they hold in ``_release``.
    """

    _temp: Path | None = None
    _closed = True

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        """Stop without output: free what is held and delete the partial."""
        self._discard()

    def remove_partial(self) -> None:
        remove_quietly(self._temp)

    def _release(self) -> None:
        """Free encoders and files before the partial is deleted (nothing here)."""

    def _discard(self) -> None:
        self._closed = True
        self._release()
        remove_quietly(self._temp)
        self._temp = None

    def __enter__(self):  # noqa: ANN204 - the subclass itself
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._discard()
