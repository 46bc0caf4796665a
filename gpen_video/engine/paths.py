"""Where cached ONNX files, TensorRT engines and timing caches are kept.

Order: an explicit folder; ``$GPEN_VIDEO_ENGINES``; the ``engines/`` folder of a source checkout
(beside the ``gpen_video`` package, recognised by its ``README.md``, when writable);
``$GPEN_VIDEO_HOME/engines``; ``$XDG_CACHE_HOME/gpen-video/engines`` (``~/.cache/…``). The
variables come from an :class:`~gpen_video.environment.Environment` (the CLI's).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gpen_video.environment import Environment
from gpen_video.errors import OutputError

_CHECKOUT_ENGINES = Path(__file__).resolve().parents[2] / "engines"


def default_engine_dir(env: Environment | None = None) -> Path:
    """The engine cache folder when none is given (see the module docstring). Not created.

    ``env``: the CLI's :class:`Environment`; None reads this process's."""
    env = env if env is not None else Environment.read()
    if env.engines is not None:
        return env.engines
    checkout = _CHECKOUT_ENGINES
    if (checkout / "README.md").is_file() and os.access(checkout, os.W_OK):
        return checkout
    if env.home is not None:
        return env.home / "engines"
    return env.user_cache / "engines"


def engine_dir(explicit: Path | str | None = None, env: Environment | None = None, *,
               writable: bool = True) -> Path:
    """``explicit`` or :func:`default_engine_dir`, created if missing.

    ``writable=False``: an existing read-only folder is returned as it is (for reading what it
    holds; :func:`require_writable` before writing into it).

    Raises:
        OutputError: the folder cannot be created, or (``writable``) is not writable.
    """
    folder = Path(explicit).expanduser() if explicit is not None else default_engine_dir(env)
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the engine cache folder {folder}: "
                          f"{exc.strerror or exc}; pass another with --engine-dir (or set "
                          "GPEN_VIDEO_ENGINES), or use --backend torch, which needs none"
                          ) from None
    if writable:
        require_writable(folder)
    return folder


def require_writable(folder: Path, what: str = "") -> None:
    """Raises OutputError (where to point ``--engine-dir``) unless ``folder`` is writable.

    ``what``: the file that needs writing, named in the message."""
    if not _can_write(folder):
        need = f" and {what} must be written there" if what else ""
        raise OutputError(f"the engine cache folder {folder} is not writable{need}; pass "
                          "another with --engine-dir (or set GPEN_VIDEO_ENGINES), or use "
                          "--backend torch, which needs none")


def _can_write(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried: mode bits do not stop root, an
    immutable folder or a read-only mount does)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
