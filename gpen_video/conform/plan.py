"""What an edit uses, as frame ranges of its media: pure functions over an OTIO timeline.

Nothing here opens a media file or renders a frame; :mod:`gpen_video.conform.media` finds the
files and their facts (:class:`MediaFacts`), and the render follows the plan this module makes.

Conventions (written once, here):

* **Media frames.** A clip's times (``source_range``, transitions' offsets) are OTIO
  ``RationalTime`` values in the media's time; they become *media frames* (integers at the
  file's own rate, as the timeline counts them: a file whose timecode starts at 01:00:00:00 at
  25 fps has media frame 90000 first). A *file frame* is 0-based in the file (what
  ``gpen-video --frames A-B`` takes): ``file frame = media frame − origin``, where the origin is
  the media's ``available_range`` start, else the file's own timecode, else 0.
* **What a clip shows.** Its trimmed range, widened by the transitions next to it (OTIO's
  ``visible_range``), cut to what its enclosing nested stacks show of it (their own trims and
  transitions, recursively). Timeline step ``i`` of a clip (0 at its trimmed start, negative
  inside an incoming transition) shows media frame ``start + floor(i × s)`` where ``s`` is the
  product of its linear time warps' scalars (1 without; 2 for a 2× speed-up; 0 for a freeze
  frame, which shows ``start`` throughout; negative plays backwards). Any other time effect is
  refused by name (:class:`UnsupportedEffect`).
* **Skipped and counted:** gaps, generators (colour, bars), titles, clips on audio tracks,
  disabled clips and tracks, image sequences (not rendered by conform yet).
* **Ranges.** Each use, widened by ``handles`` frames on both sides, is clamped to the file
  (``0 … frames − 1``) and to the media's available range; the ranges of one media file that
  overlap or lie at most ``merge_gap`` frames apart become one (rendering a short gap costs less
  than the warm-up of another range). The frames a clip uses without handles must lie inside
  the file, else the timeline and the file disagree (:class:`LengthMismatch`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gpen_video.errors import InputError, UsageError

DEFAULT_HANDLES = 12  # frames on each side of what a clip uses: the usual conform handle
DEFAULT_MERGE_GAP = 24  # ranges of one file this close are rendered as one
# plain (non-time) effects whose names say they change which frames are shown
_TIME_EFFECT_NAME = re.compile(r"time|speed|retime|remap|reverse|freeze", re.IGNORECASE)
_RATE_TOLERANCE = 1e-4  # relative: 23.976 written as 23.976023976… is 24000/1001


class UnsupportedEffect(UsageError):
    """A clip carries a time effect conform cannot map to source frames (exit 2)."""


class LengthMismatch(InputError):
    """The timeline uses frames a media file does not have, or counts it at another rate, or
    states another length for it (exit 2)."""


@dataclass(frozen=True)
class ClipUse:
    """What one video clip of the timeline shows of its media."""

    index: int  # position among the timeline's clips, in walk order (tracks bottom to top)
    name: str
    track: str  # "V1", or "V2 › Nested › V1" inside a nested stack
    media: str  # the media's key: the reference's target as written in the timeline
    first: int  # first and last media frames shown (inclusive), handles not included
    last: int
    shown: int  # timeline frames the clip occupies, transition overlaps included
    scalar: float = 1.0  # product of its linear time warps (1: none, 0: a freeze frame)
    rate: float = 0.0  # the rate the timeline counts this media in
    declared_frames: int | None = None  # the media's available range, as the timeline says
    declared_start: int | None = None
    clip: Any = field(default=None, compare=False, repr=False)  # the OTIO clip

    @property
    def effect(self) -> str:
        """How the clip maps timeline frames to media frames, in words ("" for 1:1)."""
        if self.scalar == 1.0:
            return ""
        if self.scalar == 0.0:
            return "freeze frame"
        return f"{self.scalar:g}× speed"


@dataclass
class Skipped:
    """Timeline items that need no render, counted by kind."""

    gaps: int = 0
    generators: int = 0
    titles: int = 0
    audio: int = 0
    disabled: int = 0
    image_sequences: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def text(self) -> str:
        parts = [f"{n} {k.replace('_', ' ')}" for k, n in self.__dict__.items() if n]
        return ", ".join(parts) if parts else "nothing"


@dataclass(frozen=True)
class MediaFacts:
    """What the render needs to know of one media file (:mod:`gpen_video.conform.media`)."""

    frames: int  # frames in the file
    fps: float
    origin: int  # media frame of the file's frame 0 (see module docstring)


@dataclass(frozen=True)
class Use:
    """One clip's frames of a file, as file frames: without and with handles."""

    clip: int  # ClipUse.index
    first: int
    last: int
    wide_first: int
    wide_last: int


@dataclass(frozen=True)
class RenderRange:
    """File frames ``first … last`` (inclusive) of one media file, rendered once."""

    media: str
    first: int
    last: int
    clips: tuple[int, ...]  # ClipUse.index of every clip it serves

    @property
    def count(self) -> int:
        return self.last - self.first + 1


# ---------------------------------------------------------------------------------- the walk


def collect_uses(timeline: Any) -> tuple[list[ClipUse], Skipped]:
    """Every video clip the timeline shows, with the media frames it shows (module docstring).

    Raises:
        InputError: an item's range cannot be known.
        UnsupportedEffect: a clip (or a nested stack) has a time effect other than a linear
            time warp or a freeze frame.
    """
    import opentimelineio as otio

    uses: list[ClipUse] = []
    skipped = Skipped()
    try:
        _walk_stack(timeline.tracks, None, "", uses, skipped)
    except otio.exceptions.CannotComputeAvailableRangeError as exc:
        raise InputError(f"timeline {timeline.name!r}: an item has neither a source range nor "
                         f"an available range ({exc}); export the timeline again") from None
    return uses, skipped


def _walk_stack(stack: Any, window: Any, path: str, uses: list[ClipUse],
                skipped: Skipped) -> None:
    """``window``: the part of ``stack`` shown, in its own time (None: all of it)."""
    import opentimelineio as otio

    video = 0
    for child in stack:
        if isinstance(child, otio.schema.Track):
            audio = child.kind == otio.schema.TrackKind.Audio
            video += 0 if audio else 1
            name = child.name or ("A" if audio else f"V{video}")
            label = f"{path} › {name}" if path else name
        else:
            audio, label = False, path or "V"
        sub = child.trimmed_range()  # what the stack shows of it, in its own time
        if window is not None:
            sub = _intersect(_shift(window, sub.start_time), sub)
        if audio:
            skipped.audio += _count_clips(child)
        elif not child.enabled:
            skipped.disabled += _count_clips(child)
        elif sub is None:
            continue
        elif isinstance(child, otio.schema.Track):
            _walk_track(child, sub, label, uses, skipped)
        else:
            _visit(child, sub, label, uses, skipped)


def _walk_track(track: Any, window: Any, path: str, uses: list[ClipUse],
                skipped: Skipped) -> None:
    import opentimelineio as otio

    placement = track.range_of_all_children()  # each item in the track's (untrimmed) time
    for item in track:
        if isinstance(item, otio.schema.Transition):
            continue
        placed = placement[item]
        trimmed = item.trimmed_range()
        visible = item.visible_range()
        # the visible part, in the track's time, cut to the window, back in the item's time
        start = placed.start_time - (trimmed.start_time - visible.start_time)
        shown = otio.opentime.TimeRange(start, visible.duration)
        if window is not None:
            shown = _intersect(shown, window)
            if shown is None:
                continue
        part = otio.opentime.TimeRange(trimmed.start_time + (shown.start_time
                                                             - placed.start_time),
                                       shown.duration)
        _visit(item, part, path, uses, skipped)


def _visit(item: Any, part: Any, path: str, uses: list[ClipUse], skipped: Skipped) -> None:
    """One item of a track (or a stack): ``part`` is what is shown of it, in its own time
    (None: its visible range)."""
    import opentimelineio as otio

    if isinstance(item, otio.schema.Gap):
        skipped.gaps += 1
        return
    if not item.enabled:
        skipped.disabled += 1
        return
    if isinstance(item, otio.schema.Stack):
        _refuse_time_effects(item, path)
        window = part if part is not None else item.visible_range()
        _walk_stack(item, window, f"{path} › {item.name or 'stack'}", uses, skipped)
        return
    if isinstance(item, otio.schema.Track):
        _walk_track(item, part, f"{path} › {item.name or 'track'}", uses, skipped)
        return
    if not isinstance(item, otio.schema.Clip):
        return
    kind = _media_kind(item)
    if kind != "media":
        setattr(skipped, kind, getattr(skipped, kind) + 1)
        return
    uses.append(_clip_use(item, part if part is not None else item.visible_range(), path,
                          len(uses)))


def _media_kind(clip: Any) -> str:
    """``media`` for a clip conform renders, else the :class:`Skipped` field it counts in."""
    import opentimelineio as otio

    ref = clip.media_reference
    if isinstance(ref, otio.schema.GeneratorReference):
        kind = (ref.generator_kind or "").lower()
        return "titles" if "title" in kind or "text" in kind else "generators"
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return "image_sequences"
    return "media"


def _clip_use(clip: Any, part: Any, path: str, index: int) -> ClipUse:
    """The media frames ``clip`` shows over ``part`` (its own time)."""
    scalar = _time_scalar(clip, path)
    trimmed = clip.trimmed_range()
    rate = _media_rate(clip)
    start = _frames(trimmed.start_time, rate)
    lo = _frames(part.start_time, rate) - start  # timeline steps from the trimmed start
    hi = lo + max(1, _frames(part.duration, rate)) - 1
    ends = (start + math.floor(lo * scalar), start + math.floor(hi * scalar))
    declared = clip.media_reference.available_range if clip.media_reference else None
    return ClipUse(index=index, name=clip.name or f"clip {index + 1}", track=path,
                   media=media_key(clip), first=min(ends), last=max(ends),
                   shown=hi - lo + 1, scalar=scalar, rate=rate,
                   declared_frames=None if declared is None else _frames(declared.duration,
                                                                        rate),
                   declared_start=None if declared is None else _frames(declared.start_time,
                                                                       rate),
                   clip=clip)


def _time_scalar(item: Any, path: str) -> float:
    """The product of ``item``'s linear time warps (1.0 without any).

    Raises:
        UnsupportedEffect: another time effect (named with the clip).
    """
    import opentimelineio as otio

    scalar = 1.0
    for effect in item.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp):
            scalar *= float(effect.time_scalar)
        elif (isinstance(effect, otio.schema.TimeEffect)
              or _TIME_EFFECT_NAME.search(effect.effect_name or "")):
            what = effect.effect_name or effect.name or type(effect).__name__
            raise UnsupportedEffect(
                f"clip {item.name!r} ({path}) has a time effect conform cannot follow: "
                f"{what!r} (only constant speed changes and freeze frames map to source "
                "frames): render that clip's media with `gpen-video --frames`, or bake the "
                "effect in the editing system first")
    return scalar


def _refuse_time_effects(stack: Any, path: str) -> None:
    """A nested stack with a time warp of its own: refused (its clips' frames would need the
    warps of every level composed)."""
    import opentimelineio as otio

    for effect in stack.effects:
        if isinstance(effect, otio.schema.TimeEffect) or _TIME_EFFECT_NAME.search(
                effect.effect_name or ""):
            raise UnsupportedEffect(
                f"nested stack {stack.name!r} ({path}) has a time effect "
                f"({effect.effect_name or type(effect).__name__!r}): conform follows time "
                "warps on clips only; move the speed change onto the clips inside it")


def _media_rate(clip: Any) -> float:
    """The rate the timeline counts the clip's media in: its available range's, else its
    trimmed range's."""
    ref = clip.media_reference
    declared = ref.available_range if ref is not None else None
    if declared is not None:
        return float(declared.duration.rate)
    return float(clip.trimmed_range().start_time.rate)


MISSING = "missing:"  # media key prefix of a clip without a target (an EDL event's reel)


def media_key(clip: Any) -> str:
    """The key that groups clips of one media: its target as the timeline writes it; without
    one (``MissingReference``: an EDL event without a source file comment), ``missing:`` and
    the name to look for (the reference's name, the EDL reel, else the clip's name);
    :mod:`gpen_video.conform.media` resolves both."""
    ref = clip.media_reference
    url = getattr(ref, "target_url", None)
    if url:
        return str(url)
    reel = (clip.metadata.get("cmx_3600") or {}).get("reel") if clip.metadata else None
    return MISSING + (getattr(ref, "name", "") or clip.name or reel or "")


def _frames(t: Any, rate: float) -> int:
    """A RationalTime as a whole number of frames at ``rate``."""
    return int(round(t.value_rescaled_to(rate)))


def _shift(window: Any, start: Any) -> Any:
    """``window`` (a stack's time) in the time of a child whose trimmed range starts at
    ``start`` (children of a stack all start at the stack's 0)."""
    import opentimelineio as otio

    return otio.opentime.TimeRange(window.start_time + start, window.duration)


def _intersect(a: Any, b: Any) -> Any:
    import opentimelineio as otio

    start = max(a.start_time, b.start_time)
    end = min(a.end_time_exclusive(), b.end_time_exclusive())
    if end <= start:
        return None
    return otio.opentime.TimeRange.range_from_start_end_time(start, end)


def _count_clips(item: Any) -> int:
    import opentimelineio as otio

    if isinstance(item, otio.schema.Clip):
        return 1
    if hasattr(item, "find_clips"):
        return sum(1 for _ in item.find_clips())
    return 0


# ------------------------------------------------------------------------------- the ranges


def same_rate(a: float, b: float) -> bool:
    """Two frame rates that count the same frames (23.976 ≈ 24000/1001, not 24)."""
    return abs(a - b) <= _RATE_TOLERANCE * max(a, b)


def file_uses(uses: list[ClipUse], facts: dict[str, MediaFacts], handles: int
              ) -> list[Use]:
    """Each clip's frames as file frames, with ``handles`` frames on each side clamped to the
    file and to the media's declared available range.

    Raises:
        LengthMismatch: the timeline counts a media in another rate than the file's, states
            another length for it, or uses frames outside the file.
    """
    if handles < 0:
        raise UsageError(f"--handles {handles}: a number of frames, 0 or more")
    out = []
    for use in uses:
        media = facts[use.media]
        _check_agreement(use, media)
        first, last = use.first - media.origin, use.last - media.origin
        if first < 0 or last >= media.frames:
            raise LengthMismatch(
                f"clip {use.name!r} ({use.track}) shows frames {first}-{last} of "
                f"{use.media} but the file has frames 0-{media.frames - 1}: the timeline "
                "was cut from another version of this file (relink it to the right one)")
        low, high = 0, media.frames - 1
        if use.declared_start is not None and use.declared_frames:
            low = max(low, use.declared_start - media.origin)
            high = min(high, use.declared_start - media.origin + use.declared_frames - 1)
        out.append(Use(use.index, first, last, max(low, first - handles),
                       min(high, last + handles)))
    return out


def _check_agreement(use: ClipUse, media: MediaFacts) -> None:
    if not same_rate(use.rate, media.fps):
        raise LengthMismatch(
            f"clip {use.name!r} ({use.track}) counts {use.media} at {use.rate:g} fps but the "
            f"file runs at {media.fps:g} fps: conform needs the timeline to count a file's "
            "frames at the file's own rate (relink the clip to the right file, or for an EDL "
            "give --rate the source's rate)")
    if use.declared_frames and use.declared_frames != media.frames:
        raise LengthMismatch(
            f"the timeline says {use.media} has {use.declared_frames} frames but the file has "
            f"{media.frames}: the timeline was cut from another version of this file")


def merge_ranges(uses: list[Use], media_of: dict[int, str], merge_gap: int = DEFAULT_MERGE_GAP
                 ) -> list[RenderRange]:
    """The ranges to render: per media file, the handles-widened uses joined where they overlap
    or lie at most ``merge_gap`` frames apart. Sorted by media, then first frame."""
    if merge_gap < 0:
        raise UsageError(f"--merge-gap {merge_gap}: a number of frames, 0 or more")
    by_media: dict[str, list[Use]] = {}
    for use in uses:
        by_media.setdefault(media_of[use.clip], []).append(use)
    ranges: list[RenderRange] = []
    for media in sorted(by_media):
        spans = sorted(by_media[media], key=lambda u: (u.wide_first, u.wide_last))
        first, last, clips = spans[0].wide_first, spans[0].wide_last, [spans[0].clip]
        for use in spans[1:]:
            if use.wide_first <= last + 1 + merge_gap:
                last = max(last, use.wide_last)
                clips.append(use.clip)
                continue
            ranges.append(RenderRange(media, first, last, tuple(sorted(clips))))
            first, last, clips = use.wide_first, use.wide_last, [use.clip]
        ranges.append(RenderRange(media, first, last, tuple(sorted(clips))))
    return ranges


def distinct_frames(spans: list[tuple[int, int]]) -> int:
    """Frames in the union of inclusive spans ``(first, last)`` of one file."""
    return sum(last - first + 1 for first, last in _union(spans))


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out
