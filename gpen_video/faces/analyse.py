"""The analyse-faces step: frames in, final per-frame faces out (detection scheduling + tracking).

::

    analyser = FaceAnalyser(detector, stream, detect_options, cut_threshold=30.0, fps=25.0)
    for batch in batches_of_frames:                # decode order, e.g. DetectOptions.batch
        for faces in analyser.push(batch):         # FrameFaces, in order, each frame once
            ...
    for faces in analyser.flush():
        ...

Two modes (``DetectOptions.mode``):

``full``
    Every ``every``-th frame is detected whole (:meth:`FaceDetector.detect`: downscaled to
    ``max_side``, fill-the-frame fallback, refinement passes); the tracker predicts in between.

``tracked`` (default)
    Cost per face, not per pixel. Each live track (tentative ones included) is looked for in a
    window around its predicted landmarks on every frame (:mod:`gpen_video.faces.window_detect`:
    an upright canonical crop in which the face has the detector's best size, refined in the same
    round). The whole frame is scanned only to find new faces: every ``every`` frames (default
    ≈ 0.5 s of video), on the first frame of each shot and after a track is lost, at the
    resolution that finds faces down to ``scan_min_iod`` px between the eyes, tiled and spread
    over frames at high resolution (:mod:`gpen_video.faces.scan_plan`,
    :mod:`gpen_video.faces.schedule`). A scan frame where nothing at all was found also gets
    the fill-the-frame look of ``full`` mode (``fill_fallback``: close-ups). A scan face that no
    window found is a *seed*: a second round looks for it in windows on its frame and every
    later frame of the batch, so a new face gets the same refined landmarks as a tracked one
    and the same confirmation rule (``TrackOptions.confirm_hits`` detections). A face appearing
    anywhere is found within ``every`` frames of its first frame.

Per batch: one round (one forward per kind of image, one copy back to the host); another only
when a scan found a face that is not tracked yet, or found nothing at all (the fill look). Shot cuts are detected here (the same
:class:`~gpen_video.faces.cuts.CutDetector` rule as the stream's) because the schedule needs them
before detection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpen_video.faces.cuts import CutDetector
from gpen_video.faces.scan_plan import fill_part
from gpen_video.faces.schedule import ScanSchedule
from gpen_video.faces.track import box_iou
from gpen_video.faces.types import Detection, FrameFaces
from gpen_video.faces.window_detect import ScanJob, WindowDetector, WindowJob
from gpen_video.options import DETECT_MODES, DetectOptions

MODES = DETECT_MODES
SCAN_SECONDS = 0.5  # default interval between full scans in tracked mode
FIRST_GATE = 2.0  # a window's first pass takes a face within this many IODs of the prediction
#                   (a 224 window spans ±1.9 IODs of a face at the 288 template scale; predictions reach up to a batch ahead, and the
#                   tracker gates again with its own, newer prediction)


def detect_every(options: DetectOptions, fps: float) -> int:
    """Frames between detections: full mode every ``every`` frames (0: every frame); tracked
    mode the interval of full scans (0: ≈ ``SCAN_SECONDS`` of video)."""
    if options.every > 0:
        return int(options.every)
    if options.mode == "full":
        return 1
    return max(1, round(SCAN_SECONDS * fps))


def stream_detect_every(options: DetectOptions, fps: float) -> int:
    """The ``detect_every`` a :class:`FaceStream` fed by this mode needs: in tracked mode every
    live track is looked for on every frame."""
    return detect_every(options, fps) if options.mode == "full" else 1


class _Clock:
    def add(self, stage: str, since: float) -> float:
        return time.perf_counter()


class FaceAnalyser:
    """Detection scheduling in front of a :class:`~gpen_video.faces.stream.FaceStream`."""

    def __init__(self, detector: Any, stream: Any, options: DetectOptions,
                 cut_threshold: float = 30.0, fps: float = 25.0, clock: Any = None) -> None:
        """``clock``: an object with ``add(stage, since) -> now`` (the pipeline's StageClock)
        that receives the time spent in "detect" and "track".

        Raises:
            UsageError: unknown mode.
        """
        from gpen_video.errors import UsageError

        if options.mode not in MODES:
            raise UsageError(f"--detect {options.mode!r}: choose {' or '.join(MODES)}")
        self.detector = detector
        self.stream = stream
        self.options = options
        self.every = detect_every(options, fps)
        self.clock = clock if clock is not None else _Clock()
        self._pushed = 0  # frames pushed so far: the stream's and the tracker's frame index
        self._number = 0  # the clip's frame number of the first frame pushed
        if options.mode == "tracked":
            crops = (options.window_size,) + (options.window_refine_size,) * max(
                0, int(options.refine))
            self.windows = WindowDetector(detector, options.refine_size, crops,
                                          first_gate=FIRST_GATE,
                                          first_scale=options.window_scale or None)
            self.schedule = ScanSchedule(self.every, options.scan_min_iod, options.max_side or 640)
            self.cuts = CutDetector(threshold=cut_threshold)

    def push(self, frames: Sequence[np.ndarray], number: int | None = None
             ) -> list[FrameFaces]:
        """Analyse the next frames (RGB, in order); return the frames that are now final.

        ``number``: the clip's frame number of ``frames[0]``, given on the first push (default
        0); the detect-every phase and the scan cycles follow it, so a run that starts
        decoding in the middle of a clip (a chunk) detects on the frames a whole-clip run does.
        """
        if not frames:
            return []
        if self._pushed == 0 and number is not None:
            self._number = int(number)
        if self.options.mode == "full":
            return self._push_full(frames)
        return self._push_tracked(frames)

    def flush(self) -> list[FrameFaces]:
        """End of stream: every frame still held."""
        t = time.perf_counter()
        ready = self.stream.flush()
        self.clock.add("track", t)
        return ready

    # -- full ---------------------------------------------------------------------------------

    def _push_full(self, frames: Sequence[np.ndarray]) -> list[FrameFaces]:
        first = self._number + self._pushed
        wanted = [i for i in range(len(frames)) if (first + i) % self.every == 0]
        t = time.perf_counter()
        found = self.detector.detect([frames[i] for i in wanted]) if wanted else []
        t = self.clock.add("detect", t)
        per_frame: list = [None] * len(frames)
        for i, dets in zip(wanted, found):
            per_frame[i] = dets
        ready = []
        for frame, dets in zip(frames, per_frame):
            ready.extend(self.stream.push(dets, frame))
            self._pushed += 1
        self.clock.add("track", t)
        return ready

    # -- tracked ------------------------------------------------------------------------------

    def _push_tracked(self, frames: Sequence[np.ndarray]) -> list[FrameFaces]:
        t = time.perf_counter()
        first = self._pushed
        cuts = [self.cuts.update(frame) and first + i > 0 for i, frame in enumerate(frames)]
        live = sorted(self.stream.tracker.tracks.values(),
                      key=lambda track: (not track.confirmed, track.track_id))
        windows: list[WindowJob] = []
        scans: list[ScanJob] = []
        tracks_valid = True
        for i, frame in enumerate(frames):
            index = first + i
            shot_start = index == 0 or cuts[i]
            tracks_valid = tracks_valid and not cuts[i]
            if tracks_valid:
                for track in live:
                    landmarks = track.predict(index)[0]
                    if np.hypot(*(landmarks[1] - landmarks[0])) >= 1.0:
                        windows.append(WindowJob(i, landmarks, track.track_id))
            scans.extend(ScanJob(i, part) for part in self.schedule.parts_for(
                self._number + index, frame.shape, shot_start))
        t = self.clock.add("track", t)
        found = self.windows.run(frames, windows, scans)
        per_frame: list[list[Detection] | None] = [None] * len(frames)
        for job, det in zip(windows, found.windows):
            per_frame[job.frame] = per_frame[job.frame] or []
            if det is not None and not _overlaps(det, per_frame[job.frame],
                                                 self.options.nms_threshold):
                per_frame[job.frame].append(det)  # two tracks on one face: the older keeps it
        self._report_lost(windows, found.windows, live)
        scan_results = found.scans
        if self.options.fill_fallback:
            scans, scan_results = self._fill_looks(frames, scans, scan_results, per_frame)
        seeds = self._seeds(frames, scans, scan_results, per_frame)
        if seeds:
            self._add_seeds(frames, seeds, cuts, per_frame)
        t = self.clock.add("detect", t)
        ready = []
        for i, dets in enumerate(per_frame):
            ready.extend(self.stream.push(dets, cut=cuts[i]))
        self._pushed += len(frames)
        self.clock.add("track", t)
        return ready

    def _report_lost(self, jobs: list[WindowJob], results: list[Detection | None],
                     live: list) -> None:
        missed = {job.key for job, det in zip(jobs, results) if det is None}
        boxes = [track.detection.box for track in live
                 if track.track_id in missed and track.confirmed]
        if boxes:
            self.schedule.lost(boxes)

    def _fill_looks(self, frames: Sequence[np.ndarray], jobs: list[ScanJob],
                    results: list[list[Detection]], per_frame: list[list[Detection] | None]
                    ) -> tuple[list[ScanJob], list[list[Detection]]]:
        """Frames whose scan and windows found nothing get the fill-the-frame look of full
        mode (close-ups); an extra round, only then."""
        found = {job.frame for job, dets in zip(jobs, results) if dets}
        empty = sorted({job.frame for job in jobs} - found)
        empty = [i for i in empty if not per_frame[i]]
        if not empty:
            return jobs, results
        extra = [ScanJob(i, fill_part(frames[i].shape[1], frames[i].shape[0])) for i in empty]
        return jobs + extra, results + self.windows.run(frames, [], extra).scans

    def _seeds(self, frames: Sequence[np.ndarray], jobs: list[ScanJob],
               results: list[list[Detection]],
               per_frame: list[list[Detection] | None]) -> dict[int, list[Detection]]:
        """Per frame, the scan's faces that no window found (merged across scan parts)."""
        by_frame: dict[int, list[Detection]] = {}
        for job, dets in zip(jobs, results):
            by_frame.setdefault(job.frame, []).extend(dets)
            per_frame[job.frame] = per_frame[job.frame] or []
        seeds = {}
        for i, dets in by_frame.items():
            known = per_frame[i] or []
            merged = _suppress(sorted(dets, key=lambda d: -d.score), self.options.nms_threshold)
            new = [d for d in merged if not _overlaps(d, known, self.stream.track_options.min_iou)]
            if new:
                seeds[i] = new
        return seeds

    def _add_seeds(self, frames: Sequence[np.ndarray], seeds: dict[int, list[Detection]],
                   cuts: list[bool], per_frame: list[list[Detection] | None]) -> None:
        """Second round: each seed looked for in windows on its frame and the later frames of
        the batch (up to the next cut). A seed its own window misses keeps its scan landmarks."""
        jobs: list[WindowJob] = []
        for i, dets in seeds.items():
            for n, det in enumerate(dets):
                for k in range(i, len(frames)):
                    if k > i and cuts[k]:
                        break
                    jobs.append(WindowJob(k, det.landmarks, (i, n)))
        found = self.windows.run(frames, jobs, []).windows
        for job, det in zip(jobs, found):
            i, n = job.key
            if det is None and job.frame == i:
                det = seeds[i][n]
            if det is not None:
                current = per_frame[job.frame] or []
                if not _overlaps(det, current, self.options.nms_threshold):
                    current.append(det)
                per_frame[job.frame] = current


def _overlaps(det: Detection, others: list[Detection], threshold: float) -> bool:
    if not others:
        return False
    return bool((box_iou(det.box, np.array([o.box for o in others]))[0] > threshold).any())


def _suppress(dets: list[Detection], threshold: float) -> list[Detection]:
    """Greedy NMS over detections sorted best first."""
    kept: list[Detection] = []
    for det in dets:
        if not _overlaps(det, kept, threshold):
            kept.append(det)
    return kept
