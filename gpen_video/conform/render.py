"""Render each planned range once, frame-exact, through the product's range machinery.

A range ``A … B`` of a file is the job ``gpen-video FILE OUT --frames A-B`` with the warm-up a
farm chunk gets (:func:`gpen_video.farm.warmup.chunk_margins`: frames decoded before and after
the range so that it renders what a whole-clip render renders at those frames). With one
worker the ranges render one after another in this process, the restorer and detector loaded
once; with ``--workers N`` every range is cut into chunks and all chunks of all ranges share
one queue of N processes (:func:`gpen_video.farm.local.render_chunks`), then each range is
stitched (:func:`gpen_video.farm.stitch.stitch`). One progress display covers the timeline.

Outputs: ``OUTDIR/<media stem>_<first>-<last>.<ext>`` (0-based file frames, as ``--frames``
counts them; a stem two media share gets a short hash of the path). ``<ext>`` is the source's
file type when it holds the codec, else ``.mov`` (``.mkv`` for FFV1). Each output is written
to a temporary name and renamed when complete (:class:`gpen_video.media.VideoSink`), with the
source's codec family (or ``--codec``), rate, colour tags, the range's audio and the timecode
of its first frame as the edit counts it (``EncodeOptions.timecode``: the media's origin).

Resume: ``OUTDIR/<timeline>.conform.json`` records each finished range with a key of
everything that changes it (the source file, the range, every rendering option:
:func:`gpen_video.farm.plan.job_key`); a rerun reuses the ranges whose key matches and whose
file is there, and renders only the rest. A range in which no face was found is not kept: its
file is removed and its clips keep their original media (recorded too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gpen_video.conform.media import Media
from gpen_video.conform.plan import RenderRange
from gpen_video.errors import OutputError, UsageError
from gpen_video.options import FarmOptions, RunOptions

log = logging.getLogger("gpen_video.conform")

MANIFEST_SUFFIX = ".conform.json"
NO_FACE = "no face"


@dataclass(frozen=True)
class RangeJob:
    """One range to render: where from, where to, with what."""

    range: RenderRange
    media: Media
    options: RunOptions  # input, output, encode (timecode), range with its warm-up
    key: str  # everything that changes the result (resume)

    @property
    def output(self) -> Path:
        return Path(self.options.output)


@dataclass
class RangeResult:
    """What became of a range."""

    job: RangeJob
    status: str  # planned | rendered | reused | no face
    faces: int | None = 0  # None: not counted (a --farm render reports no faces)
    tracks: int | None = 0
    reused: bool = False  # finished by an earlier run of the same conform (the manifest)

    @property
    def relinked(self) -> bool:
        """Its clips point at the restored file."""
        return self.status in ("rendered", "reused")


def output_suffix(source_suffix: str, family: str) -> str:
    """The restored file's type: the source's when it holds ``family``, else .mov (.mkv for
    FFV1)."""
    from gpen_video.media.codecs import CONTAINERS

    holds = CONTAINERS.get(source_suffix.lower(), (None, frozenset()))[1]
    if family in holds:
        return source_suffix.lower()
    return ".mkv" if family == "ffv1" else ".mov"


def _stems(media: list[Media]) -> dict[str, str]:
    """Media key → the stem its outputs are named with (unique)."""
    count: dict[str, int] = {}
    for m in media:
        count[m.path.stem] = count.get(m.path.stem, 0) + 1
    out = {}
    for m in media:
        stem = m.path.stem
        if count[stem] > 1:
            stem += "-" + hashlib.sha256(str(m.path.resolve()).encode()).hexdigest()[:6]
        out[m.key] = stem
    return out


def plan_jobs(ranges: list[RenderRange], media: dict[str, Media], outdir: Path,
              run: RunOptions) -> list[RangeJob]:
    """The render job of each range (module docstring).

    Raises:
        UsageError: ``--codec`` asks for an image sequence.
    """
    from gpen_video.farm.plan import job_key
    from gpen_video.farm.warmup import chunk_margins
    from gpen_video.media.codecs import IMAGE_CODECS, default_family
    from gpen_video.media.timecode import format_timecode

    if run.encode.codec in IMAGE_CODECS:
        raise UsageError(f"conform writes video files: --codec {run.encode.codec} makes image "
                         "sequences; choose prores, dnxhr, ffv1, h264 or hevc")
    stems = _stems(list(media.values()))
    jobs = []
    margins: dict[float, Any] = {}
    families: dict[str, str] = {}
    for rng in ranges:
        m = media[rng.media]
        if m.key not in families:
            families[m.key] = run.encode.codec or _source_family(m, default_family)
        family = families[m.key]
        name = f"{stems[m.key]}_{rng.first}-{rng.last}{output_suffix(m.suffix, family)}"
        if m.facts.fps not in margins:
            margins[m.facts.fps] = chunk_margins(run, m.facts.fps)
        encode = replace(run.encode, timecode=format_timecode(m.facts.origin, m.facts.fps,
                                                              drop_frame=m.drop_frame))
        options = replace(run, input=m.path, output=outdir / name, overwrite=True,
                          progress="none", encode=encode,
                          range=margins[m.facts.fps].range(rng.first, rng.last))
        jobs.append(RangeJob(range=rng, media=m, options=options,
                             key=job_key(options, rng.count, None)))
    return jobs


def _source_family(media: Media, default_family: Callable) -> str:
    from gpen_video.media import VideoSource

    with VideoSource(media.path) as src:
        return default_family(src.video_info)


# ------------------------------------------------------------------------------- resume


class Manifest:
    """``OUTDIR/<timeline>.conform.json``: the finished ranges of this conform (module
    docstring), written through a temporary file after each range."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            self.entries = dict(json.loads(path.read_text()).get("ranges", {}))
        except (OSError, ValueError, AttributeError):
            self.entries = {}

    def finished(self, job: RangeJob) -> dict[str, Any] | None:
        """The record of ``job`` if it finished with the same key (and its file is there)."""
        entry = self.entries.get(job.output.name)
        if not entry or entry.get("key") != job.key:
            return None
        if entry.get("status") != NO_FACE and not job.output.is_file():
            return None
        return entry

    def record(self, result: RangeResult) -> None:
        self.entries[result.job.output.name] = {
            "key": result.job.key, "status": NO_FACE if result.status == NO_FACE else "done",
            "media": str(result.job.media.path), "first": result.job.range.first,
            "last": result.job.range.last, "faces": result.faces, "tracks": result.tracks}
        temp = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        temp.write_text(json.dumps({"ranges": self.entries}, indent=1, sort_keys=True))
        os.replace(temp, self.path)


def sort_out(jobs: list[RangeJob], manifest: Manifest, overwrite: bool) -> list[RangeResult]:
    """Each job as reused (finished before) or planned.

    Raises:
        OutputError: a planned output exists but is not a finished render of this job (another
            timeline or other settings), and ``overwrite`` is False.
    """
    results = []
    for job in jobs:
        entry = manifest.finished(job)
        if entry is not None:
            status = NO_FACE if entry["status"] == NO_FACE else "reused"
            results.append(RangeResult(job, status, entry.get("faces"), entry.get("tracks"),
                                       reused=True))
            continue
        if job.output.exists() and not overwrite:
            raise OutputError(f"{job.output} exists and is not a finished render of this conform "
                              "(another timeline or other settings): use -y (--overwrite) to "
                              "replace it, or another OUTDIR")
        results.append(RangeResult(job, "planned"))
    return results


# ------------------------------------------------------------------------------- rendering


def check_jobs(results: list[RangeResult]) -> None:
    """The single run's cheap checks for every range to render (output codec and container,
    every missing weights file), before any model loads or any range renders.

    Raises:
        what :func:`gpen_video.preflight.check_before_loading` raises.
    """
    from gpen_video.media import VideoSource
    from gpen_video.media.sink import check_sink
    from gpen_video.preflight import check_before_loading

    todo = [r.job for r in results if r.status == "planned"]
    for k, job in enumerate(todo):
        with VideoSource(job.options.input, job.options.range) as source:
            if k == 0:
                check_before_loading(job.options, source)
            else:
                check_sink(job.output, source, job.options.encode, True)


def render(results: list[RangeResult], run: RunOptions, workers: int, progress: Any,
           on_done: Callable[[RangeResult], None], farm: FarmOptions | None = None) -> None:
    """Render every planned range (module docstring); ``on_done`` hears each finished one.

    Raises:
        what a single run raises (nothing partial is left at a range's output);
        KeyboardInterrupt: finished ranges stay (recorded), the others leave nothing.
    """
    todo = [r for r in results if r.status == "planned"]
    if not todo:
        return
    if farm is not None:
        _render_farm(todo, run, farm, on_done)
    elif workers > 1:
        _render_workers(todo, run, workers, progress, on_done)
    else:
        _render_here(todo, run, progress, on_done)


def _finish(result: RangeResult, faces: int | None, tracks: int | None,
            on_done: Callable[[RangeResult], None]) -> None:
    """``faces`` None: not counted (``--farm``), the range is kept."""
    from gpen_video.media import paths

    result.faces, result.tracks = faces, tracks
    result.status = "rendered"
    if faces == 0:
        paths.remove_quietly(result.job.output)
        result.status = NO_FACE
        log.info("%s: no face in frames %d-%d, its clips keep the original media",
                 result.job.media.path.name, result.job.range.first, result.job.range.last)
    on_done(result)


def _render_here(todo: list[RangeResult], run: RunOptions, progress: Any,
                 on_done: Callable[[RangeResult], None]) -> None:
    from gpen_video import pipeline
    from gpen_video.backends import create_restorer
    from gpen_video.faces import FaceDetector

    restorer = create_restorer(run.model, run.restore)
    restorer.load()
    try:
        detector = FaceDetector(run.detect)
        before = 0
        for result in todo:
            seen = [0]

            def observer(_index: int, _faces: list, seen: list = seen, base: int = before,
                         count: int = result.job.range.count) -> None:
                seen[0] += 1
                progress.update(base + min(seen[0], count))

            summary = pipeline.run(result.job.options, restorer=restorer, detector=detector,
                                   observer=observer)
            before += result.job.range.count
            progress.update(before)
            _finish(result, summary.faces, summary.tracks, on_done)
    finally:
        restorer.close()


def _render_workers(todo: list[RangeResult], run: RunOptions, workers: int, progress: Any,
                    on_done: Callable[[RangeResult], None]) -> None:
    """All ranges' chunks on one queue of ``workers`` processes, then each range stitched."""
    from gpen_video.farm.local import render_chunks
    from gpen_video.media import paths

    frames = sum(r.job.range.count for r in todo)
    size = -(-frames // workers)
    chunks: list[tuple[Any, RunOptions]] = []
    plans = []
    try:
        for result in todo:
            plan = _range_chunks(result.job, size, len(chunks))
            plans.append(plan)
            chunks += plan["chunks"]
        summaries, _ = render_chunks(chunks, workers, run, progress)
        for result, plan in zip(todo, plans):
            mine = [summaries[c.index] for c, _ in plan["chunks"]]
            _stitch_range(result.job, plan)
            _finish(result, sum(s["faces"] for s in mine), max(s["tracks"] for s in mine),
                    on_done)
    finally:
        for plan in plans:
            paths.remove_quietly(plan["folder"])


def _render_farm(todo: list[RangeResult], run: RunOptions, farm: FarmOptions,
                 on_done: Callable[[RangeResult], None]) -> None:
    """Each range in turn on Ray (:func:`gpen_video.farm.run_farm`: its chunks spread over the
    cluster's workers, retried, stitched), in one Ray session. The farm counts no faces, so
    every range is kept."""
    from gpen_video.farm.ray_runner import ray_session, run_farm

    with ray_session(farm.ray_address):
        for result in todo:
            run_farm(replace(result.job.options, progress=run.progress), farm)
            _finish(result, None, None, on_done)


def _range_chunks(job: RangeJob, size: int, offset: int) -> dict[str, Any]:
    """The chunks of one range (global indices from ``offset``), their segment folder and
    format."""
    from gpen_video.farm.plan import Chunk, plan_chunks, segment_format
    from gpen_video.farm.warmup import chunk_margins, chunk_ranges
    from gpen_video.media import VideoSource, paths

    opts = job.options
    with VideoSource(opts.input) as src:
        fmt = segment_format(src.video_info, src.bit_depth, job.output, opts.encode, "auto")
    local = plan_chunks(job.range.first, job.range.last, size)
    ranges = chunk_ranges(local, chunk_margins(opts, job.media.facts.fps), opts.range)
    folder = paths.temp_dir_for(job.output)
    chunks = [(Chunk(offset + c.index, c.start, c.end),
               replace(opts, output=folder / c.segment_name(fmt.suffix), overwrite=True,
                       progress="none", encode=fmt.encode, range=r))
              for c, r in zip(local, ranges)]
    return {"chunks": chunks, "folder": folder, "format": fmt}


def _stitch_range(job: RangeJob, plan: dict[str, Any]) -> None:
    from gpen_video.farm.stitch import stitch

    opts = job.options
    stitch([o.output for _, o in plan["chunks"]], opts.input, job.output,
           encode=opts.encode if plan["format"].reencode else None, overwrite=True,
           frames=(job.range.first, job.range.last), timecode=opts.encode.timecode)
