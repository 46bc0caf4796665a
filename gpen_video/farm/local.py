"""``gpen-video IN OUT --workers N``: one job rendered by N pipeline processes on this machine.

One Python process feeds a GPU at 50–100 fps (decode, tracking and encode share its GIL) where
the network has room for far more, and a CPU render uses its cores only as far as the network's
threads reach. ``--workers N`` splits the output span into frame-exact chunks and renders them
in N processes at once:

1. the span is resolved as a single run resolves it (``--frames``/``--start``/``--end``; an end
   past the clip is clamped) and cut into ``N × chunks_per_worker`` chunks
   (:func:`gpen_video.farm.plan.plan_chunks`);
2. each chunk is rendered with the margins of :func:`gpen_video.farm.warmup.chunk_margins`
   (frames decoded before and after it so that it renders what the single run renders; the
   first chunk keeps the job's own ``--overlap``, the last its end), into a segment in the
   farm's format (:func:`gpen_video.farm.plan.segment_format`: lossless FFV1 for long-GOP
   delivery codecs, the delivery codec itself for intra ones) in a hidden folder beside the
   output;
3. the processes (``multiprocessing``, spawned: no state of this one) each load the restorer
   and detector once and take chunks from one queue. Threads per process: ``--threads``, else
   ``OMP_NUM_THREADS`` when set, else the cores divided among the workers. With several GPUs
   worker *i* sees only GPU ``i mod G`` (``CUDA_VISIBLE_DEVICES``, set before torch loads);
   with one GPU all workers share it;
4. the segments are stitched once (:func:`gpen_video.farm.stitch.stitch`: the delivery codec
   encoded once, the source's audio muxed once) and the folder removed. The stitch checks every
   segment against its manifest (:mod:`gpen_video.farm.manifest`; ``auto``: picture checksums
   when re-encoding, packet checksums when packet-copying); a chunk whose segment fails is
   rendered once more (when the source is still the clip the job started from) and the stitch
   repeated; failing again, the job stops with the check's error (exit 2) naming segment and
   frame.

The number of processes is bounded by the machine (:mod:`gpen_video.farm.bound`: cores, memory
per process, frames per chunk): asking for more (``--workers 999``) runs with the bound and
says so in one warning; ``auto`` is bounded the same way.

One progress display covers the whole job (rendering, then stitching). Errors are those of a
single run: a worker's error is raised again here with its own type and message, so the exit
code is the same (2 bad input, 75 transient, 1 a bug); a worker that dies without one is a
:class:`~gpen_video.errors.TransientError` (75). Ctrl-C (or any error) stops every worker,
removes the segment folder and leaves nothing at the output; a worker whose parent is gone
stops by itself within a second.

``auto`` (:func:`auto_workers`): one process per 4 cores; with GPUs at least one per GPU and at
most 4 per GPU.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from gpen_video import errors
from gpen_video.environment import Environment
from gpen_video.errors import GpenVideoError, TransientError, UsageError
from gpen_video.farm.bound import available_memory, worker_bound, worker_memory
from gpen_video.farm.manifest import SegmentError, source_identity
from gpen_video.farm.plan import STITCH_WEIGHT, plan_chunks, segment_format
from gpen_video.farm.warmup import chunk_margins, chunk_ranges
from gpen_video.progress import Progress
from gpen_video.media import paths
from gpen_video.options import RunOptions, WorkersOptions

log = logging.getLogger("gpen_video.farm")

CORES_PER_WORKER = 4  # auto: one process per this many cores
WORKERS_PER_GPU = 4  # auto: at most this many processes share one GPU
_REPORT_EVERY = 0.25  # seconds between a worker's progress messages
_STOP_SECONDS = 3.0  # a stopped worker gets this long before it is killed


class WorkerFailure(GpenVideoError):
    """A worker failed with an error that is not one of the product's own (exit 1)."""


@dataclass(frozen=True)
class WorkersReport:
    """What :func:`run_workers` did."""

    output: Path
    frames: int
    faces: int
    chunks: int
    workers: int
    threads: int  # torch threads per worker
    render_seconds: float
    stitch_seconds: float
    seconds: float
    # the longest any worker spent in its chunks' pipeline runs (opening them included; process
    # start and loading the models not): with the stitch left out, what a long clip approaches
    busiest_worker_seconds: float = 0.0
    # the chunks' host syncs summed, {stage: {kind: n}} (warm-up frames included)
    host_syncs: dict[str, dict[str, int]] = field(default_factory=dict)
    rerendered: tuple[int, ...] = ()  # chunks rendered again after failing their check

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def fps_after_load(self) -> float:
        """Frames per second of the busiest worker's rendering: the job's rate once the workers
        are up (process start, model loading and the stitch left out)."""
        return (self.frames / self.busiest_worker_seconds if self.busiest_worker_seconds > 0
                else 0.0)

    def syncs_per_frame(self, detection: bool = False) -> float:
        """Host syncs per output frame of the restore/composite path, or of detection (as
        :class:`gpen_video.pipeline.Summary` reports them for one process)."""
        from gpen_video.pipeline.summary import syncs_per_frame

        return syncs_per_frame(self.host_syncs, self.frames, detection)

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "frames": self.frames, "faces": self.faces,
                "chunks": self.chunks, "workers": self.workers, "threads": self.threads,
                "render_seconds": round(self.render_seconds, 3),
                "stitch_seconds": round(self.stitch_seconds, 3),
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 3),
                "busiest_worker_seconds": round(self.busiest_worker_seconds, 3),
                "fps_after_load": round(self.fps_after_load, 3),
                "host_syncs": self.host_syncs,
                "host_syncs_per_frame": round(self.syncs_per_frame(), 3),
                "detect_syncs_per_frame": round(self.syncs_per_frame(detection=True), 3),
                "rerendered": list(self.rerendered)}

    def text(self) -> str:
        return (f"gpen-video: wrote {self.output}: {self.frames} frames, {self.faces} faces, "
                f"{self.fps:.2f} fps with {self.workers} workers × {self.threads} thread(s) "
                f"({self.chunks} chunks; render {self.render_seconds:.1f}s, stitch "
                f"{self.stitch_seconds:.1f}s; {self.fps_after_load:.2f} fps once the workers "
                f"were up)")


# ------------------------------------------------------------------------------ planning


def auto_workers(cores: int, gpus: int, device: str = "auto") -> tuple[int, str]:
    """(workers, the reason) for ``--workers auto`` on a machine with ``cores`` and ``gpus``."""
    per_cores = max(1, cores // CORES_PER_WORKER)
    if gpus >= 1 and device != "cpu":
        n = max(gpus, min(WORKERS_PER_GPU * gpus, per_cores))
        return n, (f"{n} workers: one per {CORES_PER_WORKER} of {cores} cores, at least one "
                   f"and at most {WORKERS_PER_GPU} per GPU ({gpus} GPU(s))")
    return per_cores, f"{per_cores} worker(s): one per {CORES_PER_WORKER} of {cores} cores"


def parse_workers(text: str) -> int | None:
    """``--workers`` value: a positive count, or ``auto`` → None.

    Raises:
        UsageError: anything else.
    """
    if text.strip().lower() == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--workers {text!r}: a number of processes (1 or more) or auto")
    return n


def resolve_workers(device: str, env: Environment | None = None) -> int:
    """The count ``--workers auto`` means here (:func:`auto_workers`; logged with ``-v``)."""
    env = env if env is not None else Environment.read()
    count, why = auto_workers(os.cpu_count() or 1, len(_gpus(device, env)), device)
    log.info("--workers auto: %s", why)
    return count


def _gpus(device: str, env: Environment) -> list[str]:
    """The CUDA devices a worker may be given (``CUDA_VISIBLE_DEVICES`` names), none for CPU."""
    if device == "cpu":
        return []
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable CUDA: CPU workers
        count = 0
    visible = env.cuda_visible_devices
    names = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    return names[:count] if names else [str(i) for i in range(count)]


def worker_environment(index: int, threads: int, gpus: list[str], device: str
                       ) -> dict[str, str]:
    """Environment variables worker ``index`` sets before torch loads."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if len(gpus) > 1 and device in ("auto", "cuda"):
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


# ------------------------------------------------------------------------------ the worker


class _Orphaned(Exception):
    """The process that started this worker is gone."""


def _describe(exc: BaseException) -> tuple[str, str, int]:
    """(class name, message, exit code) of a worker's error, to be raised again by the parent."""
    code = exc.exit_code if isinstance(exc, GpenVideoError) else errors.EXIT_FAILURE
    return type(exc).__name__, str(exc), code


def _raise_again(name: str, message: str, code: int, where: str) -> None:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, GpenVideoError):
        raise cls(message)
    if code == errors.EXIT_FAILURE:
        raise WorkerFailure(f"{where} failed: {name}: {message} (run again with --workers 1 "
                            "and GPEN_VIDEO_DEBUG=1 for a traceback, and report it)")
    failure = WorkerFailure(f"{where}: {message}")
    failure.exit_code = code
    raise failure


def _worker_main(index: int, env: dict[str, str], threads: int, run: RunOptions,
                 tasks: Any, events: Any, parent: int, hook: Any = None) -> None:
    """Entry point of worker ``index`` (a spawned process): load once, render chunks."""
    os.environ.update(env)
    try:
        _serve(index, threads, run, tasks, events, parent, hook)
    except (KeyboardInterrupt, _Orphaned):
        pass  # the parent stops the job; the pipeline removed its temporary file
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        events.put(("error", index, None, _describe(exc)))
    events.close()
    events.join_thread()


def _serve(index: int, threads: int, run: RunOptions, tasks: Any, events: Any,
           parent: int, hook: Any = None) -> None:
    import torch

    from gpen_video import pipeline
    from gpen_video.backends import create_restorer
    from gpen_video.faces import FaceDetector

    torch.set_num_threads(threads)
    run = replace(run, restore=replace(run.restore, threads=threads))  # onnxruntime's too
    restorer = create_restorer(run.model, run.restore)
    restorer.load()
    try:
        # with a faces file (--faces-from) nothing is detected: no detector is loaded
        detector = FaceDetector(run.detect) if run.faces_from is None else None
        while True:
            try:
                task = tasks.get(timeout=0.5)
            except queue.Empty:
                if os.getppid() != parent:
                    raise _Orphaned from None
                continue
            if task is None:
                return
            chunk, options, attempt = task
            state = {"frames": 0, "sent": 0.0}

            def observer(_index: int, _faces: list) -> None:
                state["frames"] += 1
                now = time.perf_counter()
                if now - state["sent"] >= _REPORT_EVERY:
                    state["sent"] = now
                    if os.getppid() != parent:
                        raise _Orphaned
                    events.put(("frames", index, chunk.index, state["frames"]))

            try:
                summary = pipeline.run(options, restorer=restorer, detector=detector,
                                       observer=observer)
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, _Orphaned)):
                    raise
                events.put(("error", index, chunk.index, _describe(exc)))
                return
            if hook is not None:  # tests only: the segment is written
                hook(chunk, attempt, -1, options.output)
            events.put(("done", index, chunk.index, summary.as_dict()))
    finally:
        restorer.close()


# ------------------------------------------------------------------------------ the driver


def _source_facts(run: RunOptions) -> tuple[int, int, int, float]:
    """(first, last, bit depth, fps) of the job's output span."""
    from gpen_video.farm.ray_runner import _resolve_span
    from gpen_video.media import VideoSource

    first, last, depth, _ = _resolve_span(run)
    with VideoSource(run.input) as src:
        fps = float(src.fps) if src.fps else 25.0
    return first, last, depth, fps


def run_workers(run: RunOptions, workers: WorkersOptions = WorkersOptions(), *,
                env: Environment | None = None, stdout: TextIO | None = None,
                stderr: TextIO | None = None, chunk_hook: Any = None) -> WorkersReport:
    """Render ``run`` with ``workers.count`` local processes and stitch (module docstring).

    ``env``: the environment's ``OMP_NUM_THREADS`` and ``CUDA_VISIBLE_DEVICES`` (default: this
    process's). ``chunk_hook``: tests only — called in the worker's process as
    ``hook(chunk, attempt, -1, segment)`` once a chunk's segment is written (pickled to the
    workers; the CLI never sets it).

    Raises:
        UsageError, InputError, OutputError, WeightsError, BackendUnavailable: as a single
            run raises them (from here or from a worker); also an image-sequence output.
        TransientError: a worker failed transiently, or died (exit 75).
        WorkerFailure: a worker failed with an unexpected error (exit 1).
        KeyboardInterrupt: interrupted; every worker stopped, nothing at the output.
    """
    from gpen_video.media import VideoSource
    from gpen_video.media.codecs import is_image_sequence

    t0 = time.perf_counter()
    output = Path(run.output)
    if is_image_sequence(output):
        raise UsageError("--workers writes a video file; for an image sequence run one process "
                         "per frame range (gpen-video IN out_%06d.png --frames A-B)")
    paths.check_output(output, run.input, run.overwrite)
    env = env if env is not None else Environment.read()
    gpus = _gpus(run.restore.device, env)
    cores = os.cpu_count() or 1
    asked = workers.count
    count = workers.count or resolve_workers(run.restore.device, env)
    first, last, depth, fps = _source_facts(run)
    with VideoSource(run.input) as src:
        fmt = segment_format(src.video_info, depth, output, run.encode, "auto")
        identity = source_identity(src)
    total = last - first + 1
    bound = worker_bound(cores, len(gpus), total, available_memory(),
                         worker_memory(run.restore.backend))
    if count > bound.count:
        log.warning("%s", bound.explain(asked))
        count = bound.count
    size = -(-total // max(1, count * max(1, workers.chunks_per_worker)))
    chunks = plan_chunks(first, last, size)
    count = min(count, len(chunks))
    threads = workers.threads or env.omp_threads or \
        max(1, cores // count)
    ranges = chunk_ranges(chunks, chunk_margins(run, fps), run.range)
    folder = paths.temp_dir_for(output)
    stitch_weight = STITCH_WEIGHT[fmt.reencode]
    progress = Progress(run.progress, total + round(total * stitch_weight), stdout, stderr,
                            label="gpen-video")
    summary = None
    try:
        jobs = [(c, replace(run, output=folder / c.segment_name(fmt.suffix), overwrite=True,
                            progress="none", encode=fmt.encode, range=r))
                for c, r in zip(chunks, ranges)]
        t_render = time.perf_counter()
        chunk_summaries = _render(jobs, count, threads, gpus, run, progress, hook=chunk_hook)
        render_seconds = time.perf_counter() - t_render
        stitch_seconds, again = _stitch_checked(jobs, run, fmt.reencode, (first, last),
                                                progress, total, stitch_weight, identity,
                                                (threads, gpus, chunk_hook))
        chunk_summaries = [again.get(i, s) for i, s in enumerate(chunk_summaries)]
        report = WorkersReport(output=output, frames=total,
                               faces=sum(c["faces"] for c in chunk_summaries),
                               chunks=len(chunks), workers=count, threads=threads,
                               render_seconds=render_seconds, stitch_seconds=stitch_seconds,
                               seconds=time.perf_counter() - t0,
                               busiest_worker_seconds=_busiest_worker(chunk_summaries),
                               host_syncs=_summed_syncs(chunk_summaries),
                               rerendered=tuple(sorted(again)))
        summary = report.as_dict()
        progress.close(summary, report.text())
        return report
    finally:
        if summary is None:
            progress.close()
        paths.remove_quietly(folder)


def render_chunks(jobs: list, count: int, run: RunOptions, progress: Progress, *,
                  env: Environment | None = None, threads: int | None = None
                  ) -> tuple[list[dict[str, Any]], int]:
    """Render ``jobs`` — ``(Chunk, RunOptions)`` pairs whose chunk indices are their positions
    in the list, from one clip or several (``gpen-video conform`` queues every range's chunks
    at once) — on ``count`` worker processes sharing one queue, with one ``progress`` over all
    frames. Returns the chunks' run summaries in chunk order and the torch threads per worker.

    Raises:
        as :func:`run_workers` (a worker's error again with its own type and exit code).
    """
    env = env if env is not None else Environment.read()
    count = max(1, min(count, len(jobs)))
    threads = threads or env.omp_threads or max(1, (os.cpu_count() or 1) // count)
    summaries = _render(jobs, count, threads, _gpus(run.restore.device, env), run, progress)
    return summaries, threads


def _stitch_checked(jobs: list, run: RunOptions, reencode: bool, span: tuple[int, int],
                    progress: Progress, total: int, weight: float, identity: dict,
                    render: tuple) -> tuple[float, dict[int, dict]]:
    """Stitch; a segment that fails its check (:mod:`gpen_video.farm.manifest`) is rendered
    again once, when the source is still the clip the job started from, and the stitch
    repeated. Returns (stitch seconds, the re-rendered chunks' summaries by chunk index).

    Raises:
        SegmentError: the same chunk failed its check twice, or the source changed.
    """
    again: dict[int, dict] = {}
    t = 0.0
    while True:
        try:
            return t + _stitch(jobs, run, reencode, span, progress, total, weight), again
        except SegmentError as exc:
            t += exc.__dict__.pop("_seconds", 0.0)
            index = next((i for i, (_, o) in enumerate(jobs)
                          if exc.segment is not None and Path(o.output) == exc.segment), None)
            if index is None or index in again:
                raise
            _source_unchanged(run, identity, exc)
            log.warning("%s: rendering chunk %s again", exc, jobs[index][0].frames)
            threads, gpus, hook = render
            again[index] = _render([jobs[index]], 1, threads, gpus, run, progress, hook=hook,
                                   attempt=2)[0]


def _source_unchanged(run: RunOptions, identity: dict, exc: Exception) -> None:
    """Raises InputError when the source is no longer the clip the job started from."""
    from gpen_video.farm.manifest import same_source
    from gpen_video.media import VideoSource

    with VideoSource(run.input) as src:
        now = source_identity(src)
    if not same_source(now, identity):
        raise errors.InputError(f"{exc}; and {Path(run.input).name} changed while the job "
                                "ran: run the job again on the finished file") from None


def _stitch(jobs: list, run: RunOptions, reencode: bool, span: tuple[int, int],
            progress: Progress, total: int, weight: float) -> float:
    from gpen_video.farm.manifest import pixel_options
    from gpen_video.farm.stitch import stitch

    t = time.perf_counter()

    def on_stitch(done: int, _total: int) -> None:
        progress.update(total + done * weight)

    try:
        stitch([options.output for _, options in jobs], run.input, run.output,
               encode=run.encode if reencode else None, overwrite=run.overwrite, frames=span,
               progress=on_stitch, options=pixel_options(run))
    except SegmentError as exc:
        exc._seconds = time.perf_counter() - t
        raise
    progress.update(total + round(total * weight), force=True)
    return time.perf_counter() - t


def _render(jobs: list, count: int, threads: int, gpus: list[str], run: RunOptions,
            progress: Progress, *, hook: Any = None, attempt: int = 1) -> list[dict[str, Any]]:
    """Render every job on ``count`` processes; returns the chunks' run summaries
    (:meth:`gpen_video.pipeline.Summary.as_dict`), in the order of ``jobs``."""
    ctx = multiprocessing.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    position = {c.index: k for k, (c, _) in enumerate(jobs)}
    for chunk, options in sorted(jobs, key=lambda j: -j[0].count):
        tasks.put((chunk, options, attempt))
    for _ in range(count):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, name=f"gpen-video-worker-{i}", daemon=True,
                         args=(i, worker_environment(i, threads, gpus, run.restore.device),
                               threads, run, tasks, events, os.getpid(), hook))
             for i in range(count)]
    frames: dict[int, int] = {}
    done: dict[int, dict] = {}
    try:
        for p in procs:
            p.start()
        while len(done) < len(jobs):
            try:
                kind, worker, chunk, payload = events.get(timeout=0.2)
            except queue.Empty:
                _check_alive(procs, done, jobs)
                continue
            if kind == "frames":
                frames[chunk] = payload
            elif kind == "done":
                done[chunk] = {**payload, "worker": worker}
                frames[chunk] = payload["frames"]
            elif kind == "error":
                where = f"worker {worker}" + ("" if chunk is None else
                                              f" (chunk {jobs[position[chunk]][0].frames})")
                _raise_again(*payload, where=where)
            progress.update(sum(frames.values()))
        return [done[c.index] for c, _ in jobs]
    finally:
        _stop(procs)
        tasks.cancel_join_thread()
        events.cancel_join_thread()


def _busiest_worker(summaries: list[dict]) -> float:
    """The most seconds one worker spent in its chunks' pipeline runs (setup + frames)."""
    per_worker: dict[int, float] = {}
    for summary in summaries:
        worker = summary["worker"]
        per_worker[worker] = (per_worker.get(worker, 0.0) + summary["seconds"]
                              + summary["setup_seconds"])
    return max(per_worker.values(), default=0.0)


def _summed_syncs(summaries: list[dict]) -> dict[str, dict[str, int]]:
    from gpen_video.device import HostSyncs

    total = HostSyncs()
    for summary in summaries:
        for stage, kinds in summary.get("host_syncs", {}).items():
            for kind, n in kinds.items():
                total.add(stage, kind, n)
    return total.by_stage()


def _check_alive(procs: list, done: dict, jobs: list) -> None:
    for i, p in enumerate(procs):
        if p.exitcode not in (None, 0):
            how = (f"was killed by signal {-p.exitcode}" if p.exitcode < 0
                   else f"exited with code {p.exitcode}")
            raise TransientError(f"worker {i} {how} with chunks unfinished (out of memory?); "
                                 "run the same command again, or with fewer --workers")
    if all(p.exitcode == 0 for p in procs) and len(done) < len(jobs):
        raise WorkerFailure("every worker finished but chunks are missing; report it")


def _stop(procs: list) -> None:
    """Stop every worker still running: SIGTERM, then SIGKILL after ``_STOP_SECONDS``."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    for p in procs:
        if p.pid is None:
            continue
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(timeout=1.0)
