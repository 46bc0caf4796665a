"""How a ``gpen-video`` process ends: one path for success, errors, Ctrl-C, SIGTERM and SIGHUP.

Every way a run can end goes through the same three steps:

1. **Stop.** Ctrl-C raises :class:`KeyboardInterrupt` and SIGTERM/SIGHUP raise
   :class:`Terminated` in the main thread (:class:`SignalGuard`); errors raise themselves. The
   pipeline stops its stages and removes its temporary output on the way up, like for any error.
2. **Map.** :func:`gpen_video.cli.main` turns the exception into one line on stderr and the
   documented exit code (:data:`SIGNAL_EXIT`: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
3. **Exit.** :func:`finish` ends the process. When the run succeeded and no other thread is
   left, that is the ordinary ``sys.exit``. Otherwise it removes every temporary file still
   registered here, flushes stdout/stderr and the log handlers, and calls ``os._exit``: a thread
   that could not be joined (say, inside an ONNX Runtime or torch call that takes seconds) must
   not meet interpreter teardown, which aborts the process (``terminate called without an active
   exception``, exit 134) instead of exiting with the code a render-farm manager acts on.

A few steps must not be cut in two by a signal, so the signal is held until they are done
(:func:`deferred_signals`): creating a partial output and registering it here (cut between them,
the file is left behind); opening the output container with its streams and copied tracks (a
stop then always closes a complete output, never a half-configured one); starting the
pipeline's threads (cut between a thread's start and its recording, the thread would run on,
unjoined, while the caller closes the source and sink it uses).

A signal also arms a watchdog: if the orderly path has not ended the process ``grace`` seconds
after the first signal (the main thread stuck in a long C call, a stage that ignores the stop
flag), the watchdog removes the temporary files and exits with the signal's code itself. Later
signals are ignored, so a second Ctrl-C cannot interrupt the cleanup half-way.

Temporary files: :func:`gpen_video.media.paths.temp_file_for` registers every partial output
here (:func:`track_temp`) with the descriptor that holds its lock, and unregisters it when the
file is renamed into place or removed. The registry is process-wide on purpose: it is what a
hard exit must clean, whichever library call created the file.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

from gpen_video.errors import EXIT_INTERRUPTED

SIGNAL_EXIT = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: 128 + signal.SIGTERM,
               signal.SIGHUP: 128 + signal.SIGHUP}
DEFAULT_GRACE = 2.0  # seconds from the first signal to the watchdog's exit

_temps: dict[str, int | None] = {}  # path of a partial output → descriptor holding its lock
_temps_lock = threading.Lock()


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (a ``BaseException``, like :class:`KeyboardInterrupt`, so
    that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_code = SIGNAL_EXIT.get(self.signum, 128 + self.signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def stopped_message(exc: BaseException) -> str:
    """The one line printed when a signal stopped the run."""
    what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped by {exc}"
    return f"gpen-video: {what}; nothing was written to the output path"


# ------------------------------------------------------------------------------ temporary files


def track_temp(path: str | os.PathLike[str], lock_fd: int | None = None) -> None:
    """Register a partial output (and the descriptor holding its lock) for removal on exit."""
    with _temps_lock:
        _temps[os.fspath(path)] = lock_fd


def untrack_temp(path: str | os.PathLike[str]) -> int | None:
    """Forget ``path``; returns its lock descriptor (the caller closes it), or None."""
    with _temps_lock:
        return _temps.pop(os.fspath(path), None)


def tracked_temps() -> list[Path]:
    """Partial outputs of this process not yet renamed or removed."""
    with _temps_lock:
        return [Path(p) for p in _temps]


def remove_temps() -> None:
    """Delete every registered partial output (files or image-sequence folders) and release
    their locks. Errors are ignored: this runs on the way out."""
    import shutil

    with _temps_lock:
        items = list(_temps.items())
        _temps.clear()
    for name, fd in items:
        try:
            if os.path.isdir(name) and not os.path.islink(name):
                shutil.rmtree(name, ignore_errors=True)
            else:
                os.unlink(name)
        except OSError:
            pass
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


# ------------------------------------------------------------------------------ exiting


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    for handler in list(logging.getLogger("gpen_video").handlers):
        try:
            handler.flush()
        except (OSError, ValueError):
            pass


def other_threads() -> list[threading.Thread]:
    """Threads of this process still running besides the current one."""
    me = threading.current_thread()
    return [t for t in threading.enumerate() if t is not me and t.is_alive()]


def release_multiprocessing() -> None:
    """Run multiprocessing's exit finalizers, as interpreter teardown would: they unlink the
    named semaphores of the queues ``--workers`` uses (:mod:`gpen_video.farm.local`) and tell
    Python's resource tracker so. Skipped by ``os._exit``, the tracker (a process of its own that
    outlives this one by a moment) would print "resource_tracker: There appear to be N leaked
    semaphore objects" after the product's last line. Only finalizers of priority ≥ 0 run (no
    joining of processes or threads); nothing here when multiprocessing was never imported."""
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    try:
        util._run_finalizers(0)
    except Exception:  # noqa: BLE001 - on the way out; the warning is the worst case
        pass


def hard_exit(code: int, line: str | None = None) -> NoReturn:
    """Remove the partial outputs, print ``line``, flush, and end the process now
    (``os._exit``: no interpreter teardown, so no thread can crash it)."""
    remove_temps()
    release_multiprocessing()
    if line:
        try:
            print(line, file=sys.stderr)
        except (OSError, ValueError):
            pass
    _flush()
    os._exit(code)


def finish(code: int) -> NoReturn:
    """End the process with ``code`` (see the module docstring for why not always
    ``sys.exit``)."""
    if code == 0 and not tracked_temps() and not other_threads():
        _flush()
        sys.exit(0)
    hard_exit(code)


# ------------------------------------------------------------------------------ signals


class _Deferral:
    """Signals held back in the main thread during steps that belong together."""

    depth = 0
    pending: BaseException | None = None


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold a signal that arrives inside the block until the block ends, then raise it.

    For the main thread's steps that belong together (module docstring): a partial output's
    creation and registration, the opening of the output, the start of the stage threads. The
    watchdog is armed when the signal arrives, as always, so a block that hangs still ends the
    process. Nested blocks raise at the outermost end; other threads never receive these
    exceptions anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if _Deferral.depth == 0 and _Deferral.pending is not None:
            exc, _Deferral.pending = _Deferral.pending, None
            raise exc


class SignalGuard:
    """Turns SIGINT/SIGTERM/SIGHUP into exceptions in the main thread and arms the watchdog.

    ``with SignalGuard(grace=2.0): code = main()``. Outside the main thread (where Python
    cannot install handlers) it does nothing. The previous handlers are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.grace = float(grace)
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._watchdog: threading.Timer | None = None

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()

    def ignore_further(self) -> None:
        """The process is ending on its own: later signals change nothing."""
        if self.received is None:
            self.received = 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # the first signal's path (or the watchdog) is already ending the run
        self.received = signum
        exc: BaseException = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
        self._watchdog = threading.Timer(self.grace, hard_exit,
                                         (SIGNAL_EXIT[signum], stopped_message(exc)))
        self._watchdog.daemon = True
        self._watchdog.start()
        if _Deferral.depth > 0:  # inside deferred_signals(): raised when the block ends
            _Deferral.pending = exc
            return
        raise exc
