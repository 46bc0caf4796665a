"""Domain errors. Each message is one line that says what went wrong and what to do next.

The CLI maps every :class:`GpenVideoError` to its ``exit_code`` and prints only the message;
anything else is a bug and exits 1 with a traceback only under ``GPEN_VIDEO_DEBUG=1``.

Exit codes (also in the README; render-farm managers read them):

====  =====================================================================
0     done
1     other failure (a bug, or something not classified)
2     usage or bad input: retrying the same command will fail again
75    transient (EX_TEMPFAIL): network down, out of memory, device busy; retry
130   interrupted (Ctrl-C)
143   stopped by SIGTERM (129: SIGHUP); nothing was written
====  =====================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 75
EXIT_INTERRUPTED = 130


class GpenVideoError(Exception):
    """Base of every error the product raises on purpose."""

    exit_code: int = EXIT_FAILURE


class UsageError(GpenVideoError):
    """The command line or an option value is wrong."""

    exit_code = EXIT_USAGE


class InputError(GpenVideoError):
    """The input file is missing, unreadable, or not a video we can process."""

    exit_code = EXIT_USAGE


class OutputError(GpenVideoError):
    """The output path cannot be written (missing folder, read-only, same as input, exists)."""

    exit_code = EXIT_USAGE


class WeightsError(GpenVideoError):
    """A weights file is missing, corrupt, or belongs to another model."""

    exit_code = EXIT_USAGE


class DownloadError(GpenVideoError):
    """Weights could not be downloaded (network). Retryable."""

    exit_code = EXIT_TRANSIENT


class BackendUnavailable(GpenVideoError):
    """A requested backend or device is not available on this machine."""

    exit_code = EXIT_USAGE


class TransientError(GpenVideoError):
    """A failure that may pass if the same command is run again (out of memory, busy device)."""

    exit_code = EXIT_TRANSIENT


class DiskFullError(TransientError):
    """A write failed for lack of space: the disk or the quota is full (ENOSPC, EDQUOT) or the
    file outgrew a size limit (EFBIG). Retryable once space is freed."""
