"""Media, timelines and an independent "what does the timeline show" for the conform tests.

The media are the first frames of two real clips of ``testdata/videos`` (LivePortrait d0 and
d11, 25 fps, one face each), scaled to 128×128 so that every render stays cheap, written as
H.264 in .mov with an AAC tone: ``A`` with timecode 01:00:00:00, ``B`` without one.

:func:`shown_frames` samples a timeline frame by frame (independently of
:mod:`gpen_video.conform.plan`, which works on ranges): for every video track and timeline frame,
every clip visible there (two inside a dissolve) and the media frame it shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from tests.media_helpers import AudioSpec, VideoSpec, make_video

RATE = 25
SIZE = 128
A_FRAMES, B_FRAMES = 48, 60
A_TC = "01:00:00:00"
A_ORIGIN = 90000  # 01:00:00:00 at 25 fps


def derive_clip(source: Path, out: Path, frames: int, timecode: str | None) -> Path:
    """The first ``frames`` frames of ``source`` at 128×128, H.264 .mov, 25 fps, AAC tone."""
    from gpen_video.media import VideoSource

    images = []
    with VideoSource(source) as src:
        for frame in src:
            images.append(cv2.resize(frame.image, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
            if len(images) == frames:
                break
    return make_video(out, VideoSpec(images=images, codec="libx264", pix_fmt="yuv420p",
                                     rate=Fraction(RATE), timecode=timecode,
                                     audio=[AudioSpec(seconds=frames / RATE)]))


def make_media(folder: Path, testdata: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    videos = testdata / "videos"
    a = derive_clip(videos / "liveportrait_d0.mp4", folder / "A.mov", A_FRAMES, A_TC)
    b = derive_clip(videos / "liveportrait_d11.mp4", folder / "B.mov", B_FRAMES, None)
    return a, b


def _rt(v: float, rate: float = RATE):
    import opentimelineio as otio

    return otio.opentime.RationalTime(v, rate)


def _tr(start: float, duration: float, rate: float = RATE):
    import opentimelineio as otio

    return otio.opentime.TimeRange(_rt(start, rate), _rt(duration, rate))


def clip(name: str, media: Path, start: int, duration: int, *, origin: int = 0,
         frames: int | None = None, url: str | None = None):
    """A clip of ``media`` showing media frames ``start`` … (media frames count from
    ``origin``; ``frames``: the available range's length, when the timeline states it)."""
    import opentimelineio as otio

    ref = otio.schema.ExternalReference(
        target_url=url or str(media),
        available_range=None if frames is None else _tr(origin, frames))
    return otio.schema.Clip(name=name, media_reference=ref,
                            source_range=_tr(origin + start, duration))


def edit_timeline(a: Path, b: Path):
    """Two video tracks, a gap, a dissolve, A used twice with overlapping ranges, a 2×
    speed-up, a freeze frame, a nested stack (trimmed), an audio track; media frames of A
    count from its timecode (01:00:00:00), B's from 0, both with available ranges."""
    import opentimelineio as otio

    A = dict(origin=A_ORIGIN, frames=A_FRAMES)
    B = dict(frames=B_FRAMES)
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(clip("A1", a, 1, 12, **A))  # A 1-12, +3 after (dissolve)
    v1.append(otio.schema.Transition(name="dissolve", in_offset=_rt(3), out_offset=_rt(3)))
    v1.append(clip("B1", b, 20, 12, **B))  # B 17-31 (3 before)
    v1.append(otio.schema.Gap(source_range=_tr(0, 5)))
    fast = clip("A2 2x", a, 30, 6, **A)  # shows A 30, 32, … 40
    fast.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    v1.append(fast)
    inner = otio.schema.Track(name="inner", kind=otio.schema.TrackKind.Video)
    inner.append(clip("B2 nested", b, 40, 16, **B))
    nest = otio.schema.Stack(name="nest", source_range=_tr(4, 8))  # B 44-51
    nest.append(inner)
    v1.append(nest)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(source_range=_tr(0, 10)))
    v2.append(clip("A3 overlap", a, 8, 10, **A))  # A 8-17, overlaps A1
    freeze = clip("B3 freeze", b, 5, 4, **B)  # B 5 four times
    freeze.effects.append(otio.schema.FreezeFrame())
    v2.append(freeze)
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    audio.append(clip("sound", a, 0, 20, **A))
    tl = otio.schema.Timeline(name="cut", global_start_time=_rt(A_ORIGIN))
    tl.tracks.extend([v1, v2, audio])
    return tl


@dataclass(frozen=True)
class Shown:
    """One clip visible at one timeline frame of one track."""

    track: str
    time: int  # timeline frame
    clip: str
    media_frame: int
    ref_url: str  # the clip's active reference
    ref_start: int  # its available range's start (media frames)


def _scalar(item) -> float:
    import opentimelineio as otio

    s = 1.0
    for e in item.effects:
        if isinstance(e, otio.schema.LinearTimeWarp):
            s *= e.time_scalar
    return s


def shown_frames(timeline) -> list[Shown]:
    """Every (track, timeline frame, clip, media frame) the timeline shows (module docstring)."""
    out: list[Shown] = []
    duration = int(timeline.duration().value)
    for track in timeline.video_tracks():
        for t in range(duration):
            _sample(track, t, track.name, out, t)
    return out


def _sample(track, t: int, label: str, out: list[Shown], t0: int) -> None:
    """Clips of ``track`` visible at its frame ``t`` (timeline frame ``t0``)."""
    import opentimelineio as otio

    items = list(track)
    for i, item in enumerate(items):
        if isinstance(item, (otio.schema.Transition, otio.schema.Gap)):
            continue
        placed = track.range_of_child_at_index(i)
        start, end = int(placed.start_time.value), int(placed.end_time_exclusive().value)
        before = items[i - 1] if i > 0 else None
        after = items[i + 1] if i + 1 < len(items) else None
        lead = int(before.in_offset.value) if isinstance(before, otio.schema.Transition) else 0
        trail = int(after.out_offset.value) if isinstance(after, otio.schema.Transition) else 0
        if not start - lead <= t < end + trail:
            continue
        own = int(item.trimmed_range().start_time.value) + (t - start)
        if isinstance(item, otio.schema.Stack):
            for sub in item:
                _sample(sub, own, f"{label}>{item.name}", out, t0)
            continue
        first = int(item.trimmed_range().start_time.value)
        media_frame = first + math.floor((own - first) * _scalar(item))
        ref = item.media_reference
        out.append(Shown(label, t0, item.name, media_frame, ref.target_url,
                         int(ref.available_range.start_time.value)))


def decoded(path: Path) -> list[np.ndarray]:
    from gpen_video.media import VideoSource

    with VideoSource(path) as src:
        return [f.image for f in src]
