"""SMPTE timecode ↔ frame numbers (pure functions, no PyAV).

Conventions: a timecode is ``"HH:MM:SS:FF"`` (non-drop-frame) or ``"HH:MM:SS;FF"`` /
``"HH:MM:SS.FF"`` (drop-frame, only meaningful at 29.97 and 59.94 fps). The timecode *base*
is the nominal integer rate: ``round(fps)`` (30 for 30000/1001). Frame numbers are 0-based and
count frames from ``00:00:00:00`` unless an origin timecode is given, in which case they count
from the origin (the clip's first frame), which is what ``--start``/``--end`` mean.
"""

from __future__ import annotations

import re
from fractions import Fraction

from gpen_video.errors import UsageError

_TC_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def timecode_base(fps: Fraction | float) -> int:
    """The nominal integer frame rate a timecode counts in (``round(fps)``, at least 1)."""
    return max(1, int(round(float(fps))))


def _drop_frames_per_minute(base: int) -> int:
    # 29.97 drops 2 frame numbers per minute, 59.94 drops 4 (except every 10th minute).
    return 2 * (base // 30) if base % 30 == 0 else 0


def parse_timecode(text: str, fps: Fraction | float) -> int:
    """``"HH:MM:SS:FF"`` → absolute frame number counted from ``00:00:00:00``.

    Drop-frame (``;`` separator) is honoured for 30- and 60-based rates.

    Raises:
        UsageError: not a timecode, or a field is out of range for ``fps``.
    """
    match = _TC_RE.match(text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a timecode: expected HH:MM:SS:FF, e.g. 01:00:00:00")
    hours, minutes, seconds, sep, frames = match.groups()
    h, m, s, f = int(hours), int(minutes), int(seconds), int(frames)
    base = timecode_base(fps)
    if m >= 60 or s >= 60 or f >= base:
        raise UsageError(f"timecode {text!r}: minutes/seconds must be < 60 and frames < {base}")
    drop = sep in ";.," and _drop_frames_per_minute(base) > 0
    total_minutes = 60 * h + m
    number = ((total_minutes * 60) + s) * base + f
    if drop:
        per_min = _drop_frames_per_minute(base)
        if s == 0 and f < per_min and m % 10 != 0:
            raise UsageError(f"timecode {text!r} does not exist in drop-frame timecode")
        number -= per_min * (total_minutes - total_minutes // 10)
    return number


def format_timecode(number: int, fps: Fraction | float, drop_frame: bool = False) -> str:
    """Absolute frame number → ``"HH:MM:SS:FF"`` (``;`` before FF when ``drop_frame``).

    Hours wrap at 24, as timecode does.
    """
    if number < 0:
        raise ValueError(f"frame number must be >= 0, got {number}")
    base = timecode_base(fps)
    per_min = _drop_frames_per_minute(base) if drop_frame else 0
    if per_min:
        frames_per_10min = base * 600 - per_min * 9
        frames_per_min = base * 60 - per_min
        tens, rest = divmod(number, frames_per_10min)
        if rest < per_min:
            extra = 0
        else:
            extra = per_min * ((rest - per_min) // frames_per_min)
        number += per_min * 9 * tens + extra
    f = number % base
    s = (number // base) % 60
    m = (number // (base * 60)) % 60
    h = (number // (base * 3600)) % 24
    return f"{h:02d}:{m:02d}:{s:02d}{';' if per_min else ':'}{f:02d}"


def is_drop_frame(timecode: str) -> bool:
    """True if the timecode uses a drop-frame separator (``;``, ``.`` or ``,``)."""
    match = _TC_RE.match(timecode.strip())
    return bool(match) and match.group(4) != ":"


def add_frames(timecode: str, frames: int, fps: Fraction | float) -> str:
    """The timecode ``frames`` frames after ``timecode`` (drop-frame kept if it was)."""
    drop = is_drop_frame(timecode)
    return format_timecode(parse_timecode(timecode, fps) + frames, fps, drop_frame=drop)


def frame_number(text: str | int, fps: Fraction | float, origin: str | None = None) -> int:
    """A frame number given as an integer or a timecode, counted from the clip's first frame.

    ``origin`` is the clip's start timecode (``VideoSource.timecode``); a timecode ``text`` is
    taken relative to it (``01:00:01:00`` on a clip that starts at ``01:00:00:00`` is frame
    ``1 × fps``). Without an origin, a timecode counts from ``00:00:00:00``.

    Raises:
        UsageError: not a number or timecode, or before the origin.
    """
    if isinstance(text, int):
        number = text
    elif text.strip().lstrip("-").isdigit():
        number = int(text)
    else:
        number = parse_timecode(text, fps)
        if origin is not None:
            number -= parse_timecode(origin, fps)
            if number < 0:
                raise UsageError(f"timecode {text} is before the clip's start timecode {origin}")
    if number < 0:
        raise UsageError(f"frame number {text!r} must be >= 0")
    return number
