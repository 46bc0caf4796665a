"""Progress of a run or a farm job, for people (a tqdm bar) and for farm managers (stdout lines).

Modes (``--progress``):

* ``plain`` — ``Progress: 42%`` (integer percent, only when it grows): what Deadline-style
  stdout handlers match (``Progress: (\\d+)%``); other messages go to stderr.
* ``json`` — one JSON object per line: ``{"event": "progress", "frame": …, "total": …,
  "percent": …, "fps": …, "eta_seconds": …}`` (at most twice a second), ``{"event": "chunk", …}``
  for each chunk's fate, and ``{"event": "summary", …}`` at the end.
* ``openjd`` — Open Job Description's stdout messages: ``openjd_progress: 42`` and
  ``openjd_status: <text>``.
* ``bar`` — a tqdm bar on stderr; ``none`` — nothing.

One implementation serves the single-process pipeline (:func:`gpen_video.pipeline.run`), the
farm and ``stitch``. A single run prints ``Progress:`` lines (``--progress plain``);
:class:`OpenJDStream` rewrites them for ``--progress openjd``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from typing import Any, TextIO

PROGRESS_MODES = ("bar", "plain", "json", "openjd", "none")
_PLAIN_RE = re.compile(r"^Progress: (\d+(?:\.\d+)?)%$")


class OpenJDStream(io.TextIOBase):
    """A text stream that turns ``Progress: N%`` lines into ``openjd_progress: N`` and passes
    every other line through unchanged."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._target.write(translate_line(line) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._target.write(translate_line(self._pending))
            self._pending = ""
        self._target.flush()


def translate_line(line: str) -> str:
    """``Progress: 42%`` → ``openjd_progress: 42``; anything else unchanged."""
    m = _PLAIN_RE.match(line.strip())
    return f"openjd_progress: {m.group(1)}" if m else line


class Progress:
    """Progress of a job (frames done out of ``total``) in one of :data:`PROGRESS_MODES`.
    ``update`` may be called often; output is rate-limited. ``label`` names the job on the bar
    and on event lines (``gpen-video``, ``gpen-video farm``)."""

    def __init__(self, mode: str, total: int, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, label: str = "gpen-video farm") -> None:
        if mode not in PROGRESS_MODES:
            raise ValueError(f"progress mode {mode!r}: choose one of {', '.join(PROGRESS_MODES)}")
        self.mode = mode
        self.label = label
        self.total = max(0, total)
        self.out = stdout if stdout is not None else sys.stdout
        self.err = stderr if stderr is not None else sys.stderr
        self._last_percent = -1
        self._last_json = 0.0
        self._start = time.perf_counter()
        self._done = 0
        self._bar = None
        self._redirect = None
        if mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = tqdm(total=self.total or None, unit="frame", file=self.err,
                             dynamic_ncols=True, desc=label, leave=True)
            self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger("gpen_video")])
            self._redirect.__enter__()  # log lines above the bar, not through it

    def update(self, done: float, *, force: bool = False) -> None:
        """``done`` units of work out of ``total`` (may be fractional; never goes back)."""
        done = min(max(done, self._done), self.total) if self.total else max(done, self._done)
        self._done = done
        percent = int(100 * done / self.total) if self.total else 0
        if self.mode == "bar" and self._bar is not None:
            step = int(done) - self._bar.n
            if step > 0:
                self._bar.update(step)
        elif self.mode in ("plain", "openjd"):
            if percent > self._last_percent:
                self._last_percent = percent
                line = (f"Progress: {percent}%" if self.mode == "plain"
                        else f"openjd_progress: {percent}")
                print(line, file=self.out, flush=True)
        elif self.mode == "json":
            now = time.perf_counter()
            if force or now - self._last_json >= 0.5 or done >= self.total:
                self._last_json = now
                elapsed = now - self._start
                rate = done / elapsed if elapsed > 0 else 0.0
                eta = (self.total - done) / rate if rate > 0 else None
                self._json({"event": "progress", "frame": int(done), "total": self.total,
                            "percent": round(100 * done / self.total, 1) if self.total else None,
                            "fps": round(rate, 3),
                            "eta_seconds": None if eta is None else round(eta, 1)})

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """A discrete event (a chunk done, reused, retried, failed; the stitch). ``json``: an
        object on stdout; ``openjd``: an ``openjd_status:`` line; otherwise ``message`` on
        stderr."""
        if self.mode == "none":
            return
        if self.mode == "json":
            self._json({"event": kind, **fields, "message": message})
        elif self.mode == "openjd":
            print(f"openjd_status: {message}", file=self.out, flush=True)
        elif self._bar is not None:
            self._bar.write(f"{self.label}: {message}", file=self.err)
        else:
            print(f"{self.label}: {message}", file=self.err, flush=True)

    def close(self, summary: dict[str, Any] | None = None, text: str | None = None) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if summary is None or self.mode == "none":
            return
        if self.mode in ("plain", "openjd"):
            self.update(self.total)  # the 100 % line, if rounding kept it back
        if self.mode == "json":
            self._json({"event": "summary", **summary})
        elif text:
            print(text, file=self.err if self.mode == "bar" else self.out, flush=True)

    def _json(self, obj: dict[str, Any]) -> None:
        print(json.dumps(obj, default=str), file=self.out, flush=True)
