"""Which faces a run restores, and how strongly: track ids, ``--tracks``/``--skip-tracks``,
``--faces largest`` and per-track ``--strength ID=S``.

Track ids
    The tracker numbers every candidate it starts, tentative ones included, so its own ids have
    gaps. What the user sees — on the contact sheet, in the faces file, in ``--tracks`` — is
    :class:`TrackNumbers`: 1, 2, 3 … in the order tracks are first reported (frame order; two
    tracks first reported on one frame in the tracker's order). The face stage reports frames in
    order and is deterministic, so the same clip with the same analysis options always gets the
    same ids, whether the faces are detected during the render or read from a faces file
    (``gpen-video analyse``). Ids count from the first frame a run analyses: a render of a
    frame range that detects numbers its tracks from that range's first decoded frame, which
    is why selecting tracks in chunks (``--workers``, farm chunks, ``--frames``) needs
    ``--faces-from``.

Selection order: ``--tracks`` keeps only the listed ids, ``--skip-tracks`` drops ids, then
``--faces largest`` keeps the largest remaining face of each frame. A face not selected is not
cropped, restored or pasted: its pixels are the source's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gpen_video.errors import UsageError


class TrackNumbers:
    """Tracker ids → the ids users see (1, 2, … in the order tracks are first reported)."""

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}

    def number(self, tracker_id: int) -> int:
        """The user-facing id of tracker id ``tracker_id`` (a new one the first time)."""
        found = self._numbers.get(tracker_id)
        if found is None:
            found = self._numbers[tracker_id] = len(self._numbers) + 1
        return found

    def renumber(self, faces: Sequence[Any]) -> list[Any]:
        """``faces`` (TrackedFace, in the stream's order) with user-facing ``track_id``\\ s."""
        return [replace(face, track_id=self.number(face.track_id)) for face in faces]

    @property
    def count(self) -> int:
        return len(self._numbers)


@dataclass(frozen=True)
class TrackSelection:
    """What :meth:`select` keeps (module docstring)."""

    tracks: tuple[int, ...] | None = None  # only these ids (None: every track)
    skip: tuple[int, ...] = ()  # never these ids
    largest: bool = False  # then the largest face of each frame only
    strength_ids: tuple[int, ...] = ()  # ids given their own --strength (must exist too)

    def select(self, faces: Sequence[Any]) -> list[Any]:
        """The faces of one frame to restore, in their order."""
        kept = [f for f in faces if (self.tracks is None or f.track_id in self.tracks)
                and f.track_id not in self.skip]
        if self.largest and len(kept) > 1:
            kept = [max(kept, key=lambda f: f.params.width)]
        return kept

    @property
    def named(self) -> tuple[int, ...]:
        """Every id the selection names (they must exist)."""
        return tuple(sorted(set(self.tracks or ()) | set(self.skip) | set(self.strength_ids)))

    def check_known(self, known: Iterable[int], where: str) -> None:
        """Raises:
            UsageError: an id named by ``--tracks``/``--skip-tracks`` is not in ``known`` (the
                message lists the known ids)."""
        known = sorted(set(known))
        unknown = [i for i in self.named if i not in known]
        if unknown:
            have = ", ".join(map(str, known)) if known else "none"
            raise UsageError(f"track {', '.join(map(str, unknown))}: no such track in {where} "
                             f"(its tracks: {have}); choose ids from the contact sheet "
                             "(gpen-video analyse)")


def parse_ids(flag: str, text: str | None) -> tuple[int, ...] | None:
    """``"1,4"`` → (1, 4); None → None.

    Raises:
        UsageError: not a comma-separated list of positive integers.
    """
    if text is None:
        return None
    try:
        ids = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected track ids separated by commas, e.g. "
                         "1,4 (ids as on the contact sheet)") from None
    if not ids or min(ids) < 1:
        raise UsageError(f"{flag} {text!r}: track ids are 1, 2, 3 … (as on the contact sheet)")
    return tuple(sorted(set(ids)))


def parse_strengths(values: Sequence[str] | None, default: float = 1.0
                    ) -> tuple[float, tuple[tuple[int, float], ...]]:
    """``--strength`` given any number of times: ``0.8`` sets every track's strength, ``4=0.5``
    one track's. Returns ``(global strength, ((id, strength), …))`` sorted by id; the last
    value given for a track (or globally) wins.

    Raises:
        UsageError: a value that is not a number in [0, 1], or not ``ID=S``.
    """
    overall = default
    per_track: dict[int, float] = {}
    for value in values or ():
        head, sep, tail = str(value).partition("=")
        try:
            if sep:
                track, strength = int(head), float(tail)
            else:
                track, strength = None, float(head)
        except ValueError:
            raise UsageError(f"--strength {value!r}: expected a number in [0, 1] (every face) "
                             "or ID=S (one track, e.g. 4=0.5)") from None
        if not 0.0 <= strength <= 1.0:
            raise UsageError(f"--strength {value}: must be between 0 and 1")
        if track is None:
            overall = strength
        elif track < 1:
            raise UsageError(f"--strength {value!r}: track ids are 1, 2, 3 … (as on the "
                             "contact sheet)")
        else:
            per_track[track] = strength
    return overall, tuple(sorted(per_track.items()))
