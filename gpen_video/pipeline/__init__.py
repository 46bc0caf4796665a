"""The end-to-end restorer: :func:`run` builds the stages from a :class:`RunOptions` and runs them.

::

    Decode ─▶ AnalyseFaces ─▶ RestoreFaces ─▶ ComposeFaces ─▶ Encode
    (VideoSource) (FaceDetector,  (Restorer,      (compose: colour,   (VideoSink)
                   FaceStream)     batches)        temporal, paste)

Modules: :mod:`.stages` (the five stages as objects, no threads), :mod:`.wiring` (threads and
bounded queues, or all stages in one thread), :mod:`.jobs` (what travels between the stages),
:mod:`.clock` (busy time per stage), :mod:`.summary` (what a run did). This package is the only
place that knows the order of the stages.

Order and determinism: every stage handles frames in presentation order; faces are gathered
across frames into batches of exactly ``RestoreOptions.batch`` (a partial batch only when too many
frames are waiting, or at the end), decided by counts, never by timing — the same input gives the
same batches and so bit-identical output, threaded or serial.

Before any model loads, everything that can fail cheaply is checked (:mod:`gpen_video.preflight`):
the input, the output path and codec, that every weights file is there (downloaded if allowed);
then the weights are loaded, the backend and device and the detector built. Ctrl-C (or any
error) stops every stage, deletes the sink's temporary file and re-raises: nothing is left at the
output path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from gpen_video.errors import UsageError
from gpen_video.options import (FACE_SELECTIONS, ON_DAMAGE, PROGRESS_MODES, RunOptions,
                                check_choice)
from gpen_video.pipeline.clock import STAGES, StageClock
from gpen_video.pipeline.summary import PastedFace, Summary

log = logging.getLogger("gpen_video.pipeline")

# objects of runs whose threads did not stop in time, kept alive on purpose (see run())
_LEFT_TO_STRAGGLERS: list[tuple] = []

__all__ = ["STAGES", "PastedFace", "StageClock", "Summary", "run"]

# a run prints plain lines; --progress openjd rewrites them (gpen_video.progress.OpenJDStream)
RUN_PROGRESS_MODES = tuple(m for m in PROGRESS_MODES if m != "openjd")


def _check_options(options: RunOptions) -> None:
    from gpen_video.compose import GEOMETRIES
    from gpen_video.compose.temporal import MODES
    from gpen_video.review import COMPARE

    for flag, value, allowed in (("--faces", options.faces, FACE_SELECTIONS),
                                 ("--compare", options.compare, COMPARE),
                                 ("--on-damage", options.on_damage, ON_DAMAGE),
                                 ("--progress", options.progress, RUN_PROGRESS_MODES),
                                 ("--temporal", options.temporal.mode, MODES),
                                 ("--geometry", options.blend.geometry, GEOMETRIES)):
        check_choice(flag, value, allowed)
    if not 0.0 <= options.blend.strength <= 1.0:
        raise UsageError(f"--strength {options.blend.strength}: must be between 0 and 1")
    if options.restore.batch < 1:
        raise UsageError(f"--batch {options.restore.batch}: must be at least 1")
    for track, strength in options.blend.track_strength:
        if not 0.0 <= strength <= 1.0:
            raise UsageError(f"--strength {track}={strength}: must be between 0 and 1")
    rng = options.range
    chunk = bool(rng.start or rng.overlap or rng.start_timecode)
    if options.faces_from is None and chunk and (options.tracks is not None
                                                 or options.skip_tracks
                                                 or options.blend.track_strength):
        raise UsageError("track ids are numbered over the whole clip, and this render starts "
                         "inside it: with --frames/--start (or --workers, farm chunks) select "
                         "tracks from an analysis, `gpen-video analyse IN FACES` then "
                         "--faces-from FACES")


def selection(options: RunOptions) -> Any:
    """The run's :class:`~gpen_video.faces.selection.TrackSelection`."""
    from gpen_video.faces.selection import TrackSelection

    return TrackSelection(tracks=options.tracks, skip=tuple(options.skip_tracks),
                          largest=options.faces == "largest",
                          strength_ids=tuple(t for t, _ in options.blend.track_strength))


def open_analysis(options: RunOptions, source: Any) -> Any:
    """The run's faces file (``--faces-from``), every line checked, against the clip, the
    frames this run renders and the track ids it names.

    Raises:
        FacesFileError: see :func:`gpen_video.faces.faces_file.open_faces` and the checks of
            :class:`~gpen_video.faces.faces_file.FacesFile`; UsageError: unknown track ids.
    """
    from gpen_video.faces.faces_file import open_faces
    from gpen_video.media import VideoSource

    faces = open_faces(options.faces_from)
    with VideoSource(options.input) as whole:  # identity of the clip, not of the range
        faces.check_clip(whole)
        first = faces.start if faces.start == 0 else None
        if first is not None:  # the clip's first frame: decoded at once, no seek
            frame = next(iter(whole), None)
            if frame is not None:
                faces.check_frame(frame.index, frame.image, whole.path.name)
    rng = source.range
    if rng is not None:
        faces.check_range(rng.start, rng.end)
    elif faces.start != 0 or not faces.header["range"].get("to_end"):
        faces.check_range(0, max(faces.last + 1, source.frame_count - 1))  # the whole clip
    selection(options).check_known(faces.track_ids, str(options.faces_from))
    return faces


def run(
    options: RunOptions,
    *,
    restorer: Any = None,
    detector: Any = None,
    observer: Callable[[int, list[PastedFace]], None] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: StageClock | None = None,
    serial: bool = False,
) -> Summary:
    """Restore the faces of ``options.input`` into ``options.output``.

    Args:
        options: the whole job.
        restorer: an already loaded :class:`~gpen_video.backends.Restorer` to use instead of
            building one from ``options.model``/``options.restore`` (farm workers keep one);
            it is not closed at the end.
        detector: an already built :class:`~gpen_video.faces.FaceDetector` to use instead of
            building one from ``options.detect`` (same reason).
        observer: called from the compose stage, in frame order, with each written frame's index
            and the faces pasted into it (for tests and overlays; keep it fast).
        stdout, stderr: where progress and the summary go (default: the process's).
        clock: where the stages' busy time goes (``gpen_video.bench`` passes its own).
        serial: run every stage in the calling thread, one item at a time (same output; the
            stages' times then add up to the wall time).

    Returns:
        The :class:`Summary` (also printed unless ``options.progress == "none"``).

    Raises:
        InputError, OutputError, UsageError, WeightsError, DownloadError, BackendUnavailable:
            bad input, output, options, weights or device (nothing is written).
        KeyboardInterrupt, shutdown.Terminated: every stage stopped, nothing left at the output.
    """
    from gpen_video.media.endpoints import open_source
    from gpen_video.preflight import check_before_loading

    _check_options(options)
    t_setup = time.perf_counter()
    source = open_source(options)  # a movie, or an image sequence / still
    own_restorer = restorer is None
    sink = None
    try:
        reading = options.faces_from is not None  # no detector: the faces come from a file
        check_before_loading(options, source, restorer is None,
                             detector is None and not reading)
        faces = open_analysis(options, source) if reading else None
        from gpen_video.backends import create_restorer  # (torch) only after the cheap checks
        if own_restorer:
            restorer = create_restorer(options.model, options.restore)
        restorer.load()
        if detector is None and not reading:
            from gpen_video.faces import FaceDetector

            detector = FaceDetector(options.detect)
        clock = clock if clock is not None else StageClock()
        stages = _build_stages(options, source, restorer, detector, clock, observer, faces)
        sink = _open_sink(options, source)
        from gpen_video.pipeline.stages import Encode

        stages.append(Encode(sink, clock))
        setup_seconds = time.perf_counter() - t_setup
        wiring = _wiring(options, source, stages, clock, serial)
        try:
            return _execute(wiring, stages, options, source.output_frame_count, restorer, clock,
                            setup_seconds, stdout, stderr)
        finally:
            if wiring.stragglers:
                _leave_to_stragglers(wiring, sink, source, restorer, detector)
                sink = source = None
                own_restorer = False
    finally:
        if sink is not None:
            sink.abort()  # no-op after a successful close
        if own_restorer and restorer is not None:
            restorer.close()
        if source is not None:
            source.close()


def _open_sink(options: RunOptions, source: Any) -> Any:
    """The output, at the source's size or the review layout's (``--compare``)."""
    from gpen_video.media.endpoints import open_sink
    from gpen_video.review import output_size

    recorder = None
    if options.encode.manifest:  # a farm segment (gpen_video.farm.manifest)
        from gpen_video.farm.manifest import (SegmentJob, SegmentRecorder, pixel_options,
                                              source_identity)

        recorder = SegmentRecorder(SegmentJob(source_identity(source), pixel_options(options)))
    return open_sink(options, source, output_size(options.compare, source.width, source.height),
                     recorder=recorder)


def _leave_to_stragglers(wiring: Any, sink: Any, *objects: Any) -> None:
    """A stage did not stop in time (e.g. inside a long forward pass): remove only the sink's
    temporary output and keep every object such a thread may still use alive — dropped, the
    sink's or the source's finaliser would close PyAV containers under that thread (a double
    free). The process is ending (:mod:`gpen_video.shutdown`)."""
    log.debug("stages still running after the stop: %s", wiring.stragglers)
    sink.remove_partial()
    _LEFT_TO_STRAGGLERS.append((wiring, sink, *objects))


def _build_stages(options: RunOptions, source: Any, restorer: Any, detector: Any,
                  clock: StageClock, observer: Any, faces: Any = None) -> list:
    """The analyse (or, with a faces file ``faces``, read), restore and compose stages for
    ``options`` (the encoder comes last, once the output is opened)."""
    from gpen_video.compose import create_geometry
    from gpen_video.compose.temporal import TemporalSmoother
    from gpen_video.media.endpoints import wants_layers
    from gpen_video.pipeline.stages import (ComposeFaces, ReadFaces, RestoreFaces,
                                            restored_frames)

    size = restorer.spec.size
    per_track = dict(options.blend.track_strength)
    geometry, why = create_geometry(options.blend.geometry, size, restorer.device,
                                    strength=1.0 if per_track else options.blend.strength)
    log.info(why)
    if faces is None:
        _detect_through(detector, geometry.lane)
        analyse = analyse_stage(options, source, detector, size, clock)
    else:
        analyse = ReadFaces(faces, size, clock, selection=selection(options),
                            source_name=Path(options.input).name)
    temporal = TemporalSmoother(size, options.temporal.mode)
    restores = restored_frames(source.range, options.range.prime)
    return [analyse,
            RestoreFaces(restorer, geometry, clock, batch=options.restore.batch,
                         restores=restores),
            ComposeFaces(geometry, temporal, clock, strength=options.blend.strength,
                         color_match=options.blend.color_match, observer=observer,
                         restores=restores, compare=options.compare,
                         layers=wants_layers(options, source),
                         track_strength=per_track)]


def analyse_stage(options: RunOptions, source: Any, detector: Any, crop_size: int,
                  clock: StageClock) -> Any:
    """The detecting faces stage of ``options`` (also ``gpen-video analyse``'s: one stage, so
    a faces file holds what a render's restorer would have been given)."""
    from gpen_video.faces import FaceStream
    from gpen_video.faces.analyse import stream_detect_every
    from gpen_video.pipeline.stages import AnalyseFaces

    fps = float(source.fps) if source.fps else 25.0
    stream = FaceStream(options.track, options.smooth, fps=fps, crop_size=crop_size,
                        ramp_frames=options.blend.ramp_frames,
                        detect_every=stream_detect_every(options.detect, fps))
    return AnalyseFaces(detector, stream, clock, batch=options.detect.batch,
                        detect=options.detect, fps=fps,
                        cut_threshold=options.track.cut_threshold, selection=selection(options))


def _detect_through(detector: Any, lane: Any) -> None:
    """The detector's device work goes through the run's lane: one count of host syncs for
    every stage and, when both are on the same device, one set of streams and device times."""
    from gpen_video.device import DeviceLane

    if detector.device == lane.device:
        detector.use_lane(lane)
    else:
        detector.use_lane(DeviceLane(detector.device, syncs=lane.syncs, timing=False))


def _wiring(options: RunOptions, source: Any, stages: list, clock: StageClock,
            serial: bool) -> Any:
    from gpen_video.pipeline.stages import Decode
    from gpen_video.pipeline.wiring import SerialRun, ThreadedRun

    decode = Decode(source, clock)
    if serial:
        return SerialRun(decode, stages)
    batch = max(1, options.restore.batch)
    # the queue in front of: analyse, restore, compose, encode
    sizes = (2 * max(1, options.detect.batch), max(8, batch), 8, 8)
    return ThreadedRun(decode, stages, sizes)


def _execute(wiring: Any, stages: list, options: RunOptions, total: int, restorer: Any,
             clock: StageClock, setup_seconds: float, stdout: TextIO | None,
             stderr: TextIO | None) -> Summary:
    from gpen_video.progress import Progress

    _, restore, compose, encode = stages
    progress = Progress(options.progress, total, stdout, stderr, label="gpen-video")
    start = time.perf_counter()
    summary = None
    try:
        wiring.run(on_progress=lambda: progress.update(encode.written))
        seconds = time.perf_counter() - start
        lane = compose.geometry.lane  # gpen_video.device: host syncs and device time
        device_seconds, busy = lane.device_times()
        summary = Summary(
            output=Path(options.output), frames=encode.written, faces=compose.faces,
            tracks=len(compose.tracks), seconds=seconds,
            setup_seconds=setup_seconds, stage_seconds=dict(clock.seconds),
            restorer=restorer.describe(), batches=restore.batches,
            host_syncs=lane.syncs.by_stage(), device_seconds=device_seconds, device_busy=busy,
            video=encode.sink.video_report(), audio=encode.sink.tracks_report())
        return summary
    finally:
        progress.close(None if summary is None else summary.as_dict(),
                       None if summary is None else summary.text())

