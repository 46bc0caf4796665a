"""How many frames a chunk decodes around its range so that it renders what a single run renders.

A chunk ``A … B`` of a clip (``gpen-video --workers``, ``gpen-video farm``, a farm manager's
``--frames A-B``) starts its face tracker, smoothers and temporal filter cold. Every piece of
state a single run carries into frame ``A`` has to be rebuilt from frames the chunk decodes but
does not write, and every decision a single run takes for frame ``B`` with frames after ``B`` in
view needs those frames too. This module is the one place that says how many:

``lead`` (decoded before ``A``, tracked, not restored)
    * the alignment smoother's noise estimate looks at a track's last ``noise_window`` measured
      frames (:class:`gpen_video.faces.smooth.SmoothTuning`); once the chunk has seen as many as
      the single run, both estimate the same noise levels;
      (its priors follow the face's current size, so the track's reference scale, taken from
      whichever frame a run first saw the face in, does not matter); the Kalman filter's own
      start fades well within that (measured: < 0.005 px of a 256 crop after 48 frames);
    * a track needs ``confirm_hits`` detections before it is reported, and the RTS smoother's
      look-back is covered by the above;
    * detection every N frames (``--detect full --detect-every N``) multiplies every
      "measured frame" above by N; tracked detection measures every tracked face on every
      frame, and the chunk's first frame scans the whole frame, as a shot's first frame does;
    * rounded up so that the chunk's first decoded frame starts a detector batch, as in a
      single run (RetinaFace's numbers depend slightly on which frames share its batch; the
      pipeline forms batches by frame number), and, with ``--detect full --detect-every N``, is
      a detected frame. The detect-every phase and tracked detection's scan cycles follow the
      clip's frame numbers wherever decoding starts (:class:`gpen_video.faces.FaceAnalyser`),
      so a face entering the picture is found on the same frame as in a single run.

``prime`` (the last frames of the lead, restored and temporally smoothed, not written)
    the temporal filter's memory: :meth:`gpen_video.compose.temporal.TemporalSmoother.memory_frames`
    (frames after which its starting state weighs less than ``TEMPORAL_TOLERANCE``), or the
    colour matcher's (``--color-match``, a moving average), whichever is longer.

With a faces file (``--faces-from``, :mod:`gpen_video.faces.faces_file`) every chunk reads the
single run's alignment: ``lead`` is only ``prime`` and there is no ``tail``.

``tail`` (decoded after ``B``, tracked, not restored)
    the face stream's look-ahead (:attr:`gpen_video.faces.FaceStream.delay`): the RTS lag, the
    frames that decide whether a gap is filled, and a track's fade-out; rounded up to end a
    detector batch.

Measured effect (``tests/test_workers.py``, ``benchmarks/RESULTS.md``): with these margins every
frame of a 2-worker render is within the single run's by the test's PSNR bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gpen_video.options import RangeOptions, RunOptions

if TYPE_CHECKING:
    from gpen_video.farm.plan import Chunk

_NOMINAL_CROP = 64  # no margin depends on the crop size; the stages want one
TEMPORAL_TOLERANCE = 1e-3  # weight left on the temporal filter's cold start after `prime` frames


@dataclass(frozen=True)
class ChunkMargins:
    """Frames decoded around a chunk's range (module docstring)."""

    lead: int  # at least this many before the range: tracker, smoothers
    prime: int  # the last of those restored too: the temporal filter
    tail: int  # at least this many after the range: the stream's look-ahead
    step: int = 1  # decoding starts on, and stops before, a multiple of this frame number

    def range(self, start: int, end: int) -> RangeOptions:
        """The :class:`RangeOptions` rendering frames ``start … end`` (``overlap``, ``prime``
        and ``tail`` from these margins, the first and one-past-last decoded frame numbers
        multiples of ``step``; past the clip's end the source stops at its last frame)."""
        first = max(0, (start - self.lead) // self.step * self.step)
        stop = _round_up(end + 1 + self.tail, self.step)
        return RangeOptions(start=start, end=end, overlap=start - first,
                            prime=min(self.prime, start), tail=stop - 1 - end)


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def temporal_memory(run: RunOptions) -> int:
    """Frames the temporal stages of ``run`` remember (see ``TEMPORAL_TOLERANCE``): the
    temporal filter, and the colour matcher's moving average with ``--color-match``."""
    import numpy as np

    from gpen_video.compose.colour import ColorMatcher
    from gpen_video.compose.temporal import TemporalSmoother

    frames = TemporalSmoother(_NOMINAL_CROP, run.temporal.mode).memory_frames(TEMPORAL_TOLERANCE)
    if run.blend.color_match:
        past = ColorMatcher(np.ones((8, 8), np.float32)).smoothing
        frames = max(frames, math.ceil(math.log(TEMPORAL_TOLERANCE) / math.log(past)))
    return frames


def chunk_margins(run: RunOptions, fps: float) -> ChunkMargins:
    """The margins of any chunk rendered with ``run``'s options from a clip at ``fps``."""
    from gpen_video.faces import FaceStream
    from gpen_video.faces.analyse import stream_detect_every
    from gpen_video.faces.smooth import SmoothTuning

    if run.faces_from is not None:
        # a faces file holds the single run's alignment for every frame: no tracker or smoother
        # to warm, no look-ahead; only the temporal filter's memory is restored before the range
        prime = temporal_memory(run)
        return ChunkMargins(lead=prime, prime=prime, tail=0, step=1)
    every = stream_detect_every(run.detect, fps)  # frames per measurement of a face
    batch = max(1, run.detect.batch)
    tuning = SmoothTuning()
    measured = tuning.noise_window + run.track.confirm_hits
    if run.smooth.method == "none":
        measured = run.track.confirm_hits + 1  # gap interpolation only
    stream = FaceStream(run.track, run.smooth, fps=fps, crop_size=_NOMINAL_CROP,
                        ramp_frames=run.blend.ramp_frames, detect_every=every)
    prime = temporal_memory(run)
    lead = max(measured * every, prime + run.track.confirm_hits * every)
    return ChunkMargins(lead=lead, prime=prime, tail=stream.delay, step=math.lcm(batch, every))


def chunk_ranges(chunks: list["Chunk"], margins: ChunkMargins, job: RangeOptions
                 ) -> list[RangeOptions]:
    """Each chunk's range: the warm-up margins, except where the job itself starts or ends (the
    first chunk decodes what the single run decodes before its span, the last stops where it
    stops)."""
    out = []
    for i, c in enumerate(chunks):
        rng = margins.range(c.start, c.end)
        if i == 0:
            rng = replace(rng, overlap=job.overlap, prime=job.prime)
        if i == len(chunks) - 1:
            rng = replace(rng, tail=job.tail)
        out.append(rng)
    return out


def auto_range(run: RunOptions) -> RangeOptions:
    """``run.range`` with the margins of :func:`chunk_margins` (``--overlap auto``: a farm
    chunk rendered by hand, ``gpen-video IN SEG --frames A-B --overlap auto --segment``).

    Raises:
        InputError: the input cannot be read.
    """
    from gpen_video.media import VideoSource

    with VideoSource(run.input) as src:
        fps = float(src.fps) if src.fps else 25.0
    rng = run.range
    start = rng.start or 0
    margins = chunk_margins(run, fps)
    if rng.end is None:  # to the clip's end: nothing to look ahead at
        return replace(margins.range(start, start), end=None, tail=0,
                       start_timecode=rng.start_timecode, end_timecode=rng.end_timecode)
    return replace(margins.range(start, rng.end), start_timecode=rng.start_timecode,
                   end_timecode=rng.end_timecode)
