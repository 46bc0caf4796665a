"""How the stages run: one thread per stage with bounded queues between them (the product), or
all of them in the caller's thread, one item at a time (tests; ``gpen-video bench``'s serial
breakdown, whose per-stage times then add up to the wall time).

Both drive the same stage objects (:mod:`gpen_video.pipeline.stages`) and give the same output.
Threads overlap decoding, detection, the network, pasting and encoding: PyAV, OpenCV, onnxruntime
and torch release the GIL while they work. Memory is bounded by the queues plus what the stages
hold (the faces stage's look-ahead, the frames waiting for a restore batch), never by the clip.

Stopping: an error in any stage, or an interruption of the caller, sets the stop flag; every
thread leaves at its next queue poll and a stage with an ``abort()`` (the encoder: delete the
temporary output) calls it from its own thread. Threads still busy after ``join_timeout`` (e.g.
inside a long forward pass) are left running and named in :attr:`stragglers`: their objects
must not be closed under them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gpen_video import shutdown

_POLL = 0.05  # seconds between checks of the stop flag while a queue is full/empty
_END = object()  # end-of-stream marker on the queues


class _Stopped(Exception):
    """Raised inside a stage thread when the run is being stopped."""


def _abort(stage: Any) -> None:
    abort = getattr(stage, "abort", None)
    if abort is not None:
        abort()


class SerialRun:
    """Every stage in the caller's thread: each decoded frame is pushed through the whole chain
    before the next is decoded."""

    def __init__(self, source: Iterable[Any], stages: Sequence[Any]) -> None:
        self.source = source
        self.stages = list(stages)
        self.stragglers: list[str] = []

    def run(self, on_progress: Callable[[], None] = lambda: None) -> None:
        try:
            for item in self.source:
                self._push(0, [item])
                on_progress()
            for i, stage in enumerate(self.stages):
                self._push(i + 1, stage.finish())
        except BaseException:
            for stage in self.stages:
                _abort(stage)
            raise
        on_progress()

    def _push(self, index: int, items: list) -> None:
        if index == len(self.stages):
            return
        stage = self.stages[index]
        for item in items:
            self._push(index + 1, stage.process(item))


class ThreadedRun:
    """One thread per stage (and one for the source), bounded queues of ``queue_sizes`` between
    them (``len(stages)`` sizes: the queue in front of each stage)."""

    def __init__(self, source: Iterable[Any], stages: Sequence[Any], queue_sizes: Sequence[int],
                 join_timeout: float = 1.5) -> None:
        if len(queue_sizes) != len(stages):
            raise ValueError("one queue size per stage")
        self.source = source
        self.stages = list(stages)
        self.queues = [queue.Queue(maxsize=n) for n in queue_sizes]
        self.join_timeout = join_timeout
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.stragglers: list[str] = []

    def run(self, on_progress: Callable[[], None] = lambda: None) -> None:
        """Run to the end; re-raises the first stage error (or the caller's interruption)."""
        threads: list[threading.Thread] = []
        try:
            # started and recorded as one step: a signal between a thread's start and its
            # recording would leave it running unjoined while the caller closes its objects
            with shutdown.deferred_signals():
                threads.append(self._thread("decode", self._feed))
                for i, stage in enumerate(self.stages):
                    out = self.queues[i + 1] if i + 1 < len(self.stages) else None
                    threads.append(self._thread(stage.name, self._drive, stage, self.queues[i],
                                                out))
            last = threads[-1]
            while last.is_alive():
                last.join(timeout=0.1)
                on_progress()
            if self.errors:
                raise self.errors[0]
        except BaseException:
            self.stop.set()
            deadline = time.perf_counter() + self.join_timeout
            for t in threads:  # each leaves at its next poll; the encoder deletes its temp file
                t.join(timeout=max(0.0, deadline - time.perf_counter()))
            self.stragglers = [t.name for t in threads if t.is_alive()]
            raise

    # ------------------------------------------------------------------ threads
    def _feed(self) -> None:
        for item in self.source:
            self._put(self.queues[0], item)
        self._put(self.queues[0], _END)

    def _drive(self, stage: Any, inbox: queue.Queue, outbox: queue.Queue | None) -> None:
        done = False
        try:
            while True:
                item = self._get(inbox)
                if item is _END:
                    break
                self._hand_on(stage.process(item), outbox)
            self._hand_on(stage.finish(), outbox)
            if outbox is not None:
                self._put(outbox, _END)
            done = True
        finally:
            if not done or self.stop.is_set():
                _abort(stage)

    def _hand_on(self, items: list, outbox: queue.Queue | None) -> None:
        if outbox is not None:
            for item in items:
                self._put(outbox, item)

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        def body() -> None:
            try:
                target(*args)
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                self.errors.append(exc)
                self.stop.set()

        t = threading.Thread(target=body, name=f"gpen-{name}", daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------------ queues
    def _put(self, q: queue.Queue, item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _get(self, q: queue.Queue) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue
        raise _Stopped
