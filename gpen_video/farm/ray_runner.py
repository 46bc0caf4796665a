"""``gpen-video farm``: render a clip in chunks on Ray actors, retry, resume, stitch.

The driver (this module, in the ``gpen-video farm`` process):

1. resolves the output span on the source (an end past the clip is clamped), plans chunks
   (:func:`gpen_video.farm.plan.plan_chunks`) and the segment format
   (:func:`~gpen_video.farm.plan.segment_format`);
2. finds the job's segment folder (``.<output name>.farm-<job key>`` beside the output unless
   ``segment_dir`` is given): the key covers the input file and every rendering option, so a
   segment already there (written by rename, so complete) belongs to this very job; it is checked
   (frame count, timestamps, its manifest's source, options and packet checksums) and reused —
   that is the resume after a crash;
3. starts one Ray actor per GPU (``num_gpus=1``), or without GPUs one CPU worker per
   ``cpus_per_worker`` CPUs; each actor loads the restorer and the detector once and renders
   chunk after chunk with :func:`gpen_video.pipeline.run` (``--frames A-B`` of the chunk with
   the warm-up margins of :mod:`gpen_video.farm.warmup`, at least ``--overlap`` frames before
   it), writing ``seg-A-B.ext`` by write-then-rename;
4. retries a chunk whose worker died (the actor is restarted by Ray and loads its engine again)
   or failed transiently, up to ``retries`` more times; a bad-input error stops the job at once;
5. stitches the segments (:func:`gpen_video.farm.stitch.stitch`, checking each against its
   manifest at ``farm.verify``: :mod:`gpen_video.farm.manifest`), removes the segment folder
   (unless ``keep_segments``), and reports progress over the whole job throughout
   (:class:`~gpen_video.progress.Progress`). A segment that fails its check — foreign, of
   another job, or damaged — makes its chunk render once more (a ``retry`` event naming the
   segment and frame) when the source is still the clip the job started from, then the stitch
   runs again; the resume in step 2 checks reused segments the same way.

Exit codes (through the CLI): 0 done; 2 bad input/options (a chunk failed with one, or Ray is
not installed); 75 a chunk kept failing transiently or its worker kept dying, or the cluster
cannot be reached — rerun the same command, finished segments are kept and reused; 1 other.

``run_farm(..., chunk_hook=f)`` is for tests that make a worker fail for real: each worker calls
``f(chunk, attempt, frames_done)`` before a chunk (``frames_done`` 0) and after each of its frames,
and ``f(chunk, attempt, -1, segment_path)`` once the segment is written, in the worker's process (``f`` is pickled to the workers with their other arguments). The CLI
never sets it; the options hold no test switch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, TextIO

from gpen_video.errors import (EXIT_TRANSIENT, EXIT_USAGE, GpenVideoError, TransientError,
                               UsageError)
from gpen_video.farm.manifest import SegmentError, pixel_options
from gpen_video.farm.plan import (STITCH_WEIGHT, Chunk, SegmentFormat, default_segment_dir,
                                  job_key, plan_chunks, segment_format)
from gpen_video.farm.warmup import chunk_margins, chunk_ranges
from gpen_video.progress import Progress
from gpen_video.media import paths
from gpen_video.options import EncodeOptions, FarmOptions, RangeOptions, RunOptions

log = logging.getLogger("gpen_video.farm")

ChunkHook = Callable[[Chunk, int, int], None]  # (chunk, attempt, frames done): tests only
_PROGRESS_EVERY = 0.25  # seconds between a worker's progress reports


class FarmError(GpenVideoError):
    """A chunk failed in a way that is neither bad input nor transient (exit 1)."""


# ------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class ChunkReport:
    """What happened to one chunk."""

    index: int
    start: int
    end: int
    status: str  # rendered | reused
    attempts: int  # render attempts (0 when reused)
    seconds: float = 0.0
    segment: str = ""


@dataclass(frozen=True)
class FarmReport:
    """What :func:`run_farm` did."""

    output: Path
    frames: int
    first: int
    last: int
    chunks: tuple[ChunkReport, ...]
    segment_mode: str
    segment_dir: Path
    segments_kept: bool
    workers: int
    device: str  # gpu | cpu | none (everything reused)
    render_seconds: float
    stitch_seconds: float
    seconds: float

    @property
    def rendered(self) -> list[int]:
        return [c.index for c in self.chunks if c.status == "rendered"]

    @property
    def reused(self) -> list[int]:
        return [c.index for c in self.chunks if c.status == "reused"]

    @property
    def retried(self) -> list[int]:
        return [c.index for c in self.chunks if c.attempts > 1]

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "frames": self.frames, "first": self.first,
                "last": self.last, "chunks": len(self.chunks), "rendered": self.rendered,
                "reused": self.reused, "retried": self.retried,
                "segment_mode": self.segment_mode, "segment_dir": str(self.segment_dir),
                "segments_kept": self.segments_kept, "workers": self.workers,
                "device": self.device, "render_seconds": round(self.render_seconds, 3),
                "stitch_seconds": round(self.stitch_seconds, 3),
                "seconds": round(self.seconds, 3)}

    def text(self) -> str:
        return (f"gpen-video farm: wrote {self.output}: {self.frames} frames (frames "
                f"{self.first}-{self.last}) in {len(self.chunks)} chunks ({len(self.rendered)} "
                f"rendered, {len(self.reused)} reused, {len(self.retried)} retried) on "
                f"{self.workers} {self.device} worker(s); render {self.render_seconds:.1f}s, "
                f"stitch {self.stitch_seconds:.1f}s, total {self.seconds:.1f}s")


# ------------------------------------------------------------------------------ Ray actors


class _Board:
    """Frames done per (chunk, attempt), reported by workers, read by the driver."""

    def __init__(self) -> None:
        self.done: dict[tuple[int, int], int] = {}

    def update(self, chunk: int, attempt: int, frames: int) -> None:
        self.done[(chunk, attempt)] = frames

    def snapshot(self) -> dict[tuple[int, int], int]:
        return dict(self.done)


class _ChunkWorker:
    """A Ray actor: the restorer and detector loaded once, then one chunk per call."""

    def __init__(self, run: RunOptions, board: str, hook: ChunkHook | None = None) -> None:
        import ray

        self.run = run
        self.hook = hook
        # the board by name: a handle among the constructor arguments would live in the object
        # store, which Ray warns may make restarting this actor fail
        self.board = ray.get_actor(board)
        self.restorer = self.detector = None
        self.init_error: BaseException | None = None
        try:
            from gpen_video.backends import create_restorer
            from gpen_video.faces import FaceDetector

            self.restorer = create_restorer(run.model, run.restore)
            self.restorer.load()
            if run.faces_from is None:  # a faces file: nothing is detected
                self.detector = FaceDetector(run.detect)
        except Exception as exc:  # noqa: BLE001 - re-raised by render(), typed, for the driver
            self.init_error = exc

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "restorer": None if self.restorer is None
                else self.restorer.describe(), "error": repr(self.init_error)
                if self.init_error else None}

    def render(self, chunk: Chunk, attempt: int, segment: str, encode: EncodeOptions,
               rng: RangeOptions) -> dict[str, Any]:
        from gpen_video import pipeline

        if self.init_error is not None:
            raise self.init_error
        hook = self.hook
        if hook is not None:
            hook(chunk, attempt, 0)
        state = {"frames": 0, "sent": 0.0}

        def observer(index: int, faces: list) -> None:
            state["frames"] += 1
            now = time.perf_counter()
            if now - state["sent"] >= _PROGRESS_EVERY or state["frames"] == chunk.count:
                state["sent"] = now
                self.board.update.remote(chunk.index, attempt, state["frames"])
            if hook is not None:
                hook(chunk, attempt, state["frames"])

        options = replace(self.run, output=Path(segment), overwrite=True, progress="none",
                          encode=encode,
                          range=rng)
        t0 = time.perf_counter()
        summary = pipeline.run(options, restorer=self.restorer, detector=self.detector,
                               observer=observer)
        if hook is not None:
            hook(chunk, attempt, -1, Path(segment))  # the segment is written
        self.board.update.remote(chunk.index, attempt, summary.frames)
        return {"frames": summary.frames, "faces": summary.faces,
                "seconds": time.perf_counter() - t0, "pid": os.getpid()}


# ------------------------------------------------------------------------------ driver


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("gpen-video farm needs Ray: pip install 'gpen-video[farm]' (or render "
                         "chunks with a farm manager: gpen-video IN SEG.mkv --frames A-B "
                         "--segment, then gpen-video stitch; templates in scripts/)") from None
    return ray


def local_workers_at_normal_priority() -> None:
    """A Ray instance this process starts runs its workers at niceness 0, not Ray's default 15:
    here the workers are the render itself, and a single run (``gpen-video IN OUT``) is not
    niced either; at 15 they get a few per cent of a core on a busy machine. Set through the
    environment the local raylet starts with (``RAY_worker_niceness``), so a cluster this
    process only joins keeps its own setting; an explicit value in the environment wins."""
    os.environ.setdefault("RAY_worker_niceness", "0")


def _connect(ray: Any, address: str | None) -> bool:
    """Join (or start) a Ray cluster. Returns True if this call started the Ray session."""
    if ray.is_initialized():
        return False
    local_workers_at_normal_priority()
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=True,
                 configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise TransientError(f"cannot reach {where}: {exc}; check `ray status` (start one with "
                             "`ray start --head`), or leave out --ray-address to run locally"
                             ) from None
    return True


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """One Ray session for several :func:`run_farm` calls (``gpen-video conform --farm``: one
    per range): joined or started once, shut down at the end if it was started here.

    Raises:
        UsageError: Ray is not installed. TransientError: the cluster cannot be reached.
    """
    ray = _import_ray()
    started = _connect(ray, address)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _classify(ray: Any, exc: BaseException) -> tuple[str, BaseException]:
    """('fatal' | 'retry' | 'bug', the error to report) for a failed chunk call."""
    cause = exc
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, GpenVideoError):
        if cause.exit_code == EXIT_USAGE:
            return "fatal", cause
        if cause.exit_code == EXIT_TRANSIENT:
            return "retry", cause
        return "bug", cause
    if isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError,
                        ray.exceptions.ObjectLostError)):
        return "retry", exc
    if isinstance(cause, MemoryError):
        return "retry", cause
    return "bug", cause


def _resolve_span(run: RunOptions) -> tuple[int, int, int, bool]:
    """(first, last, bit depth, end clamped) of the job's output span on the source."""
    from gpen_video.media import VideoSource

    rng = run.range
    has_start = rng.start is not None or rng.start_timecode is not None
    probe = replace(rng, overlap=0, start=rng.start if has_start else 0)
    with VideoSource(run.input, probe) as src:
        assert src.range is not None
        return src.range.start, src.range.end, src.bit_depth, src.range.clamped


def _check_segment(path: Path, chunk: Chunk, timeline: Any, source: Path,
                   options: dict | None = None) -> bool:
    """A segment on disk is this chunk's: its timestamps, and its manifest's source, options
    and packet checksums (:mod:`gpen_video.farm.manifest`)."""
    from gpen_video.farm.stitch import place_segments, probe_segment, verify_segments

    try:
        placed = place_segments([probe_segment(path)], timeline, source,
                                (chunk.start, chunk.end))
        verify_segments(placed, source, "packets", options)
        return True
    except GpenVideoError as exc:
        log.warning("segment %s is not usable (%s): rendering it again", path.name, exc)
        return False


def _remove_partials(folder: Path) -> None:
    for stale in folder.glob(f".*{paths.TEMP_TAG}*"):
        paths.remove_quietly(stale)


def run_farm(run: RunOptions, farm: FarmOptions = FarmOptions(), *,
             stdout: TextIO | None = None, stderr: TextIO | None = None,
             chunk_hook: ChunkHook | None = None) -> FarmReport:
    """Render ``run`` (input, output, every stage's options, ``range`` = span and overlap) in
    chunks on Ray and stitch the result (module docstring).

    ``run.progress`` chooses the progress mode (``bar``, ``plain``, ``json``, ``openjd``,
    ``none``). A Ray session already initialised in this process is used as it is (and left
    running); otherwise one is started (``farm.ray_address`` None) or joined, and shut down at
    the end. ``chunk_hook``: tests only (module docstring).

    Raises:
        UsageError, InputError, OutputError: bad options, input or output, or a chunk failed
            with one (exit 2); also when Ray is not installed.
        TransientError: the cluster cannot be reached, or a chunk still failed after
            ``farm.retries`` retries (exit 75; rerun to resume).
        FarmError: a chunk failed with an unexpected error after its retries (exit 1).
    """
    t0 = time.perf_counter()
    _import_ray()  # fail at once, with the extra's name, when Ray is not installed
    _check_options(run, farm)
    output = Path(run.output)
    paths.check_output(output, run.input, run.overwrite)
    first, last, fmt, chunks, ranges = _plan(run, farm, output)
    folder = _segment_folder(farm, output, job_key(run, farm.chunk, fmt))
    segment_of = {c.index: folder / c.segment_name(fmt.suffix) for c in chunks}
    total = last - first + 1
    stitch_weight = STITCH_WEIGHT[fmt.reencode]
    progress = Progress(run.progress, total + round(total * stitch_weight), stdout, stderr)
    progress.event("plan", f"{total} frames ({first}-{last}) in {len(chunks)} chunks of up to "
                   f"{farm.chunk}, {fmt.mode} segments in {folder}", first=first, last=last,
                   chunks=len(chunks), segment_mode=fmt.mode, segment_dir=str(folder))

    reports = _reusable(chunks, segment_of, Path(run.input), progress, pixel_options(run))
    identity = _identity(run)
    todo = [c for c in chunks if c.index not in reports]
    done_frames = sum(chunks[i].count for i in reports)
    progress.update(done_frames)

    workers_used, device = 0, "none"
    t_render = time.perf_counter()
    summary_dict: dict[str, Any] | None = None
    try:
        if todo:
            workers_used, device = _render(todo, len(chunks), run, farm, fmt, chunk_hook,
                                           segment_of, reports, progress, done_frames, ranges)
        render_seconds = time.perf_counter() - t_render

        t_stitch = time.perf_counter()
        rerender = functools.partial(_render, n_chunks=len(chunks), run=run, farm=farm,
                                     fmt=fmt, hook=chunk_hook, segment_of=segment_of,
                                     reports=reports, progress=progress,
                                     done_frames=done_frames, ranges=ranges)
        again_seconds, used = _stitch_checked(chunks, segment_of, run, farm, fmt,
                                              (first, last), stitch_weight, progress, identity,
                                              reports, rerender)
        if used is not None:
            workers_used, device = used
        render_seconds += again_seconds
        stitch_seconds = time.perf_counter() - t_stitch - again_seconds
        progress.update(total + round(total * stitch_weight), force=True)
        kept = farm.keep_segments
        if not kept:
            _remove_segments(folder, farm.segment_dir is None, list(segment_of.values()))
        report = FarmReport(output=output, frames=total, first=first, last=last,
                            chunks=tuple(reports[c.index] for c in chunks),
                            segment_mode=fmt.mode, segment_dir=folder, segments_kept=kept,
                            workers=workers_used, device=device, render_seconds=render_seconds,
                            stitch_seconds=stitch_seconds, seconds=time.perf_counter() - t0)
        summary_dict = report.as_dict()
        progress.close(summary_dict, report.text())
        return report
    finally:
        if summary_dict is None:
            progress.close()
        if folder.exists():
            _remove_partials(folder)  # temporary files of attempts whose worker died


def _plan(run: RunOptions, farm: FarmOptions, output: Path
          ) -> tuple[int, int, SegmentFormat, list[Chunk], dict[int, RangeOptions]]:
    """The job's span, segment format, chunks and each chunk's decode range."""
    first, last, depth, _ = _resolve_span(run)

    from gpen_video.media import VideoSource

    with VideoSource(run.input) as src:
        fmt = segment_format(src.video_info, depth, output, run.encode, farm.segments)
        fps = float(src.fps) if src.fps else 25.0
    chunks = plan_chunks(first, last, farm.chunk)
    # each chunk decodes what it needs to render what a single run renders (farm.warmup), and
    # at least --overlap frames before it
    margins = chunk_margins(run, fps)
    margins = replace(margins, lead=max(margins.lead, run.range.overlap))
    ranges = dict(zip((c.index for c in chunks), chunk_ranges(chunks, margins, run.range)))
    return first, last, fmt, chunks, ranges


def _segment_folder(farm: FarmOptions, output: Path, key: str) -> Path:
    """The job's segment folder, created, without temporary files of killed earlier attempts
    (a concurrent live run's are kept)."""
    folder = Path(farm.segment_dir) if farm.segment_dir is not None else \
        default_segment_dir(output, key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the segment folder {folder}: {exc}") from None
    paths.remove_stale_partials_in(folder)
    return folder


def _stitch_checked(chunks: list[Chunk], segment_of: dict[int, Path], run: RunOptions,
                    farm: FarmOptions, fmt: SegmentFormat, span: tuple[int, int],
                    weight: float, progress: Progress, identity: dict,
                    reports: dict[int, ChunkReport], rerender: Callable[..., tuple[int, str]]
                    ) -> tuple[float, tuple[int, str] | None]:
    """Stitch; a segment that fails its check has its chunk rendered once more (when the source
    is unchanged) and the stitch runs again. Returns (seconds spent re-rendering, the last
    re-render's (workers, device) or None).

    Raises:
        SegmentError: the same chunk failed twice. InputError: the source changed.
    """
    again: set[int] = set()
    seconds, used = 0.0, None
    while True:
        try:
            _stitch([segment_of[c.index] for c in chunks], run, fmt, span, weight, progress,
                    farm.verify)
            return seconds, used
        except SegmentError as exc:
            c = next((c for c in chunks if segment_of[c.index] == exc.segment), None)
            if c is None or c.index in again:
                raise
            _source_unchanged(run, identity, exc)
            again.add(c.index)
            progress.event("chunk", f"chunk {c.index + 1}/{len(chunks)} (frames {c.frames}) "
                           f"failed its check ({exc}): rendering it again", chunk=c.index,
                           frames=c.frames, status="retry", error=str(exc))
            paths.remove_quietly(segment_of[c.index])
            t = time.perf_counter()
            done = reports.get(c.index)
            used = rerender([c], first_attempt=max(1, done.attempts if done else 1) + 1)
            seconds += time.perf_counter() - t


def _identity(run: RunOptions) -> dict:
    from gpen_video.farm.manifest import source_identity
    from gpen_video.media import VideoSource

    with VideoSource(run.input) as src:
        return source_identity(src)


def _source_unchanged(run: RunOptions, identity: dict, exc: Exception) -> None:
    """Raises InputError when the source is no longer the clip the job started from."""
    from gpen_video.errors import InputError
    from gpen_video.farm.manifest import same_source

    if not same_source(_identity(run), identity):
        raise InputError(f"{exc}; and {Path(run.input).name} changed while the job ran: run "
                         "the job again on the finished file") from None


def _stitch(segments: list[Path], run: RunOptions, fmt: SegmentFormat, span: tuple[int, int],
            weight: float, progress: Progress, verify: str = "auto") -> None:
    """Stitch the segments into ``run.output``, reporting progress after the rendered frames."""
    from gpen_video.farm.stitch import stitch

    output = Path(run.output)
    total = span[1] - span[0] + 1
    progress.event("stitch", f"stitching {len(segments)} segments into {output}"
                   f"{' (encoding the delivery codec)' if fmt.reencode else ''}",
                   segments=len(segments), reencode=fmt.reencode)

    def on_stitch(done: int, _total: int) -> None:
        progress.update(total + done * weight)

    stitch(segments, run.input, output, encode=run.encode if fmt.reencode else None,
           overwrite=run.overwrite, frames=span, progress=on_stitch,
           timecode=run.encode.timecode, verify=verify, options=pixel_options(run))


def _check_options(run: RunOptions, farm: FarmOptions) -> None:
    """Raises UsageError for farm options out of range."""
    if farm.retries < 0:
        raise UsageError(f"--retries {farm.retries}: must be 0 or more")
    if farm.cpus_per_worker <= 0:
        raise UsageError(f"--cpus-per-worker {farm.cpus_per_worker}: must be positive")
    if farm.workers is not None and farm.workers < 1:
        raise UsageError(f"--workers {farm.workers}: must be at least 1")
    if run.range.overlap < 0:
        raise UsageError(f"--overlap {run.range.overlap}: must be 0 or more")


def _reusable(chunks: list[Chunk], segment_of: dict[int, Path], source: Path,
              progress: Progress, options: dict | None = None) -> dict[int, ChunkReport]:
    """Reports of the chunks whose segment is already on disk and checks out (the resume)."""
    from gpen_video.farm.stitch import source_timeline

    timeline = source_timeline(source)
    reports: dict[int, ChunkReport] = {}
    for c in chunks:
        seg = segment_of[c.index]
        if seg.exists() and _check_segment(seg, c, timeline, source, options):
            reports[c.index] = ChunkReport(c.index, c.start, c.end, "reused", 0,
                                           segment=seg.name)
            progress.event("chunk", f"chunk {c.index + 1}/{len(chunks)} (frames {c.frames}) "
                           f"already rendered: {seg.name} reused", chunk=c.index,
                           frames=c.frames, status="reused")
    return reports


def _remove_segments(folder: Path, own_folder: bool, segments: list[Path]) -> None:
    """After the stitch: the job's own folder goes whole; a given one keeps all but segments."""
    if own_folder:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        for seg in segments:
            paths.remove_quietly(seg)


def _render(todo: list[Chunk], n_chunks: int, run: RunOptions, farm: FarmOptions,
            fmt: SegmentFormat, hook: ChunkHook | None, segment_of: dict[int, Path],
            reports: dict[int, ChunkReport], progress: Progress, done_frames: int,
            ranges: dict[int, RangeOptions], first_attempt: int = 1) -> tuple[int, str]:
    """Render ``todo`` on Ray actors; fill ``reports``. Returns (workers, device)."""
    ray = _import_ray()
    started = _connect(ray, farm.ray_address)
    actors: list[Any] = []
    board = None
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = float(resources.get("CPU", 1))
        use_gpu = gpus >= 1 and run.restore.device != "cpu"
        n, worker_run = _workers(run, farm, gpus, cpus, use_gpu)
        n = max(1, min(n, len(todo)))
        device = "gpu" if use_gpu else "cpu"
        board_name = f"gpen-video-farm-board-{os.getpid()}-{time.monotonic_ns()}"
        board = ray.remote(num_cpus=0)(_Board).options(name=board_name).remote()
        # a worker that dies is replaced by the driver (a new actor loads the engine again) and
        # its chunk resubmitted, so every attempt is counted and reported here
        worker_cls = ray.remote(_ChunkWorker).options(
            num_cpus=farm.cpus_per_worker, num_gpus=1 if use_gpu else 0,
            max_restarts=0, max_task_retries=0)

        def new_worker() -> Any:
            return worker_cls.remote(worker_run, board_name, hook)

        actors = [new_worker() for _ in range(n)]
        progress.event("workers", f"{n} {device} worker(s) on Ray "
                       f"({int(cpus)} CPUs, {gpus} GPUs in the cluster)", workers=n,
                       device=device)

        pending: deque[Chunk] = deque(todo)
        attempts: dict[int, int] = {c.index: first_attempt - 1 for c in todo}
        running: dict[Any, tuple[int, Chunk]] = {}
        idle = list(range(n))
        finished_frames = done_frames
        while pending or running:
            while idle and pending:
                w, c = idle.pop(0), pending.popleft()
                attempts[c.index] += 1
                ref = actors[w].render.remote(c, attempts[c.index], str(segment_of[c.index]),
                                              fmt.encode, ranges[c.index])
                running[ref] = (w, c)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
            for ref in ready:
                w, c = running.pop(ref)
                idle.append(w)
                label = f"chunk {c.index + 1}/{n_chunks} (frames {c.frames})"
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - classified below
                    if isinstance(exc, (ray.exceptions.RayActorError,
                                        ray.exceptions.WorkerCrashedError)):
                        try:
                            ray.kill(actors[w])
                        except Exception:  # noqa: BLE001 - already gone
                            pass
                        actors[w] = new_worker()
                    _failed(ray, exc, c, label, attempts[c.index], farm.retries,
                            segment_of[c.index].parent, progress)  # raises unless retrying
                    pending.appendleft(c)
                    continue
                finished_frames += c.count
                reports[c.index] = ChunkReport(c.index, c.start, c.end, "rendered",
                                               attempts[c.index], result["seconds"],
                                               segment_of[c.index].name)
                progress.event("chunk", f"{label} rendered in {result['seconds']:.1f}s "
                               f"(attempt {attempts[c.index]})", chunk=c.index, frames=c.frames,
                               status="rendered", attempt=attempts[c.index],
                               seconds=round(result["seconds"], 3))
            in_flight = {c.index for _, c in running.values()}
            progress.update(finished_frames + _partial_frames(ray, board, in_flight, attempts))
        return n, device
    finally:
        _stop(ray, [*actors, board], started)


def _stop(ray: Any, actors: list[Any], shutdown: bool) -> None:
    """Kill the actors (best effort); end the Ray session if this job started it."""
    for actor in actors:
        if actor is None:
            continue
        try:
            ray.kill(actor)
        except Exception:  # noqa: BLE001 - best effort
            pass
    if shutdown:
        ray.shutdown()


def _workers(run: RunOptions, farm: FarmOptions, gpus: int, cpus: float,
             use_gpu: bool) -> tuple[int, RunOptions]:
    """How many workers to start (before capping at the chunks to do), and their options: on
    CPU workers ``auto`` devices become ``cpu``."""
    if use_gpu:
        if farm.workers and farm.workers > gpus:
            log.warning("--workers %d but the cluster has %d GPU(s): %d workers", farm.workers,
                        gpus, gpus)
        return min(farm.workers or gpus, gpus), run
    n = farm.workers or max(1, int(cpus // farm.cpus_per_worker))
    cpu = "cpu" if run.restore.device == "auto" else run.restore.device
    worker_run = replace(run, restore=replace(run.restore, device=cpu),
                         detect=replace(run.detect, device="cpu"
                                        if run.detect.device == "auto"
                                        else run.detect.device))
    return n, worker_run


def _failed(ray: Any, exc: BaseException, c: Chunk, label: str, attempts: int, retries: int,
            folder: Path, progress: Progress) -> None:
    """Report a failed chunk call; raise when the job must stop (bad input, or no retries
    left), return when the chunk is to be tried again."""
    kind, error = _classify(ray, exc)
    reason = _one_line(error)
    if kind == "fatal":
        progress.event("chunk", f"{label} failed: {reason}", chunk=c.index,
                       frames=c.frames, status="failed", error=reason)
        raise error
    if attempts > retries:
        progress.event("chunk", f"{label} failed {attempts} times: {reason}", chunk=c.index,
                       frames=c.frames, status="failed", error=reason)
        message = (f"chunk {c.index} (frames {c.frames}) failed {attempts} times, last: "
                   f"{reason}; the finished segments are kept in {folder}: run the same command "
                   "again to resume")
        raise (TransientError(message) if kind == "retry" else FarmError(message))
    progress.event("chunk", f"{label} failed ({reason}): retrying (attempt {attempts + 1} of "
                   f"{retries + 1})", chunk=c.index, frames=c.frames, status="retry",
                   attempt=attempts, error=reason)


def _partial_frames(ray: Any, board: Any, in_flight: set[int], attempts: dict[int, int]) -> int:
    """Frames done so far in the chunks still rendering (current attempts only)."""
    try:
        board_state = ray.get(board.snapshot.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - progress is best effort
        board_state = {}
    return sum(frames for (ci, att), frames in board_state.items()
               if ci in in_flight and attempts.get(ci) == att)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    head = text[0] if text else ""
    return f"{type(error).__name__}: {head}"[:300]


__all__ = ["ChunkHook", "ChunkReport", "FarmError", "FarmReport", "run_farm"]
