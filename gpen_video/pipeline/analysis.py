"""``gpen-video analyse``: the faces stage of a run, alone, written to a faces file.

::

    Decode ─▶ AnalyseFaces ─▶ WriteFaces
    (VideoSource) (the render's own   (faces file: gpen_video.faces.faces_file;
                   detecting stage)    contact sheet: gpen_video.faces.sheet)

The faces stage is built by :func:`gpen_video.pipeline.analyse_stage`, the function a render
builds its own with, from the same :class:`~gpen_video.options.RunOptions` fields (detect,
track, smooth, ``blend.ramp_frames``): what the file holds is what that render's restorer would
have been given, every face of every frame (selection happens when a render reads the file).
No restorer is loaded; the stage's crop size is irrelevant (the file holds the size-free
similarity). Output: the faces file and the sheet appear complete or not at all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from gpen_video.options import RangeOptions, RunOptions

log = logging.getLogger("gpen_video.pipeline")

_CROP = 512  # the faces stage needs a crop size; the file keeps the size-free similarity


@dataclass(frozen=True)
class AnalysisReport:
    """What :func:`analyse` did."""

    faces_file: Path
    sheet: Path | None
    frames: int
    faces: int
    tracks: int
    seconds: float
    bytes: int
    stage_seconds: dict[str, float]

    def text(self) -> str:
        per = self.bytes / self.faces if self.faces else 0.0
        sheet = f"; contact sheet {self.sheet}" if self.sheet else ""
        return (f"analysed {self.frames} frames in {self.seconds:.1f} s "
                f"({self.frames / max(self.seconds, 1e-9):.1f} fps): {self.tracks} tracks, "
                f"{self.faces} faces → {self.faces_file} ({self.bytes:,} bytes, "
                f"{per:.0f} per face-frame){sheet}")


class WriteFaces:
    """The last stage: every frame's faces into the file, the hashed frames' hashes, the
    contact sheet's crops."""

    name = "write"

    def __init__(self, writer: Any, sheet: Any, hashed: set[int], clock: Any) -> None:
        self.writer = writer
        self.sheet = sheet
        self.hashed = hashed
        self.clock = clock

    def process(self, job: Any) -> list:
        from gpen_video.faces.faces_file import frame_hash

        t = time.perf_counter()
        frame = job.frame
        if frame.in_range:
            if frame.index in self.hashed:
                self.writer.hashes[frame.index] = frame_hash(frame.image)
            self.writer.write(frame.index, job.cut, job.analysed)
            if self.sheet is not None:
                self.sheet.add(frame, job.analysed)
        self.clock.add("encode", t)
        return []

    def finish(self) -> list:
        self.writer.close()
        return []

    def abort(self) -> None:
        self.writer.abort()


def analyse(options: RunOptions, faces_path: Path, *, sheet_path: Path | None = None,
            brief: int = 12, detector: Any = None, stdout: TextIO | None = None,
            stderr: TextIO | None = None, serial: bool = False) -> AnalysisReport:
    """Analyse ``options.input`` (its range, if any; the whole clip by default) into the faces
    file ``faces_path`` and, unless ``sheet_path`` is None, a contact sheet.

    Raises:
        InputError, OutputError, UsageError, WeightsError, DownloadError: as a run would
            (nothing written).
    """
    from gpen_video.faces.faces_file import (FacesWriter, analysis_options, clip_identity,
                                             hashed_frames)
    from gpen_video.faces.analyse import stream_detect_every
    from gpen_video.faces.sheet import ContactSheet
    from gpen_video.media import VideoSource, paths
    from gpen_video.pipeline import _check_options
    from gpen_video.pipeline.wiring import SerialRun, ThreadedRun
    from gpen_video.pipeline.clock import StageClock
    from gpen_video.pipeline.stages import Decode
    from gpen_video.preflight import check_weights
    from gpen_video.progress import Progress

    _check_options(options)
    start = time.perf_counter()
    rng = options.range
    # always a resolved range: the exact last frame is known before the header is written
    rng = RangeOptions(start=rng.start or 0, end=rng.end, start_timecode=rng.start_timecode,
                       end_timecode=rng.end_timecode)
    with VideoSource(options.input) as whole:
        identity = clip_identity(whole)
    paths.check_output(faces_path, options.input, options.overwrite)
    if sheet_path is not None:
        paths.check_output(sheet_path, options.input, True)
    source = VideoSource(options.input, rng,
                         errors="strict" if options.on_damage == "fail" else "conceal")
    writer = None
    try:
        assert source.range is not None
        check_weights(options, need_restorer=False, need_detector=detector is None)
        if detector is None:
            from gpen_video.faces import FaceDetector

            detector = FaceDetector(options.detect)
        fps = float(source.fps) if source.fps else 25.0
        first, last = source.range.start, source.range.end
        header = {"writer": _writer_name(), "clip": identity,
                  "range": {"start": first, "end": last,
                            "to_end": options.range.end is None or source.range.clamped},
                  "options": analysis_options(options, fps,
                                              stream_detect_every(options.detect, fps))}
        clock = StageClock()
        from gpen_video.pipeline import analyse_stage

        stage = analyse_stage(replace(options, tracks=None, skip_tracks=(), faces="all"),
                              source, detector, _CROP, clock)
        sheet = ContactSheet(identity["name"], fps, brief) if sheet_path is not None else None
        writer = FacesWriter(faces_path, header, overwrite=options.overwrite)
        write = WriteFaces(writer, sheet, set(hashed_frames(first, last)), clock)
        decode = Decode(source, clock)
        wiring = (SerialRun(decode, [stage, write]) if serial else
                  ThreadedRun(decode, [stage, write], (2 * max(1, options.detect.batch), 8)))
        progress = Progress(options.progress, source.output_frame_count, stdout, stderr,
                            label="gpen-video analyse")
        report = None
        try:
            wiring.run(on_progress=lambda: progress.update(writer.frames))
            writer = None  # closed: renamed into place
            written = sheet.write(sheet_path) if sheet is not None else None
            report = AnalysisReport(
                Path(faces_path), written, write.writer.frames, write.writer.faces,
                write.writer.tracks, time.perf_counter() - start,
                Path(faces_path).stat().st_size, dict(clock.seconds))
            return report
        finally:
            progress.close(None if report is None else _event(report),
                           None if report is None else report.text())
    finally:
        if writer is not None:
            writer.abort()
        source.close()


def _event(report: AnalysisReport) -> dict[str, Any]:
    return {"faces_file": str(report.faces_file),
            "sheet": None if report.sheet is None else str(report.sheet),
            "frames": report.frames, "faces": report.faces, "tracks": report.tracks,
            "seconds": round(report.seconds, 3), "bytes": report.bytes,
            "stage_seconds": {k: round(v, 3) for k, v in report.stage_seconds.items()}}


def _writer_name() -> str:
    try:
        from importlib.metadata import version

        return f"gpen-video {version('gpen-video')}"
    except Exception:  # noqa: BLE001 - a checkout without metadata
        return "gpen-video"
