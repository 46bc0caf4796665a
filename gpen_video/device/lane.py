"""The one way the pipeline's stages touch a CUDA device: streams, events, pinned memory, and
counted host syncs.

Streams: detection (``detect``/``track``), the network and its crops (``align``/``restore``) and
compositing (``temporal``/``paste``) each queue their work on their own CUDA stream, so that a
stage never waits for another stage's unrelated work. A stage hands tensors to the next with an
event: :meth:`DeviceLane.mark` records one on the producer's stream after its work,
:meth:`DeviceLane.receive` makes the consumer's stream wait for it (on the device: the host does
not wait) and tells the caching allocator that the consumer's stream uses the tensors
(``record_stream``), so their memory is not reused while that stream may still read them.

Memory: frames go up from pinned host buffers (one copy of the decoded image into page-locked
memory, then an asynchronous upload) and finished frames come down into pinned buffers. Both come
from torch's caching host allocator, which recycles a buffer only after the copies that used it
completed.

Host syncs: every wait of the host for the device goes through :meth:`download`, :meth:`item`,
:meth:`synchronize` or :meth:`wait_host`, counted in :attr:`syncs` by stage and kind.

Device time: :meth:`work` brackets a stage's device work with events; :meth:`device_times` turns
them into seconds per stage and the fraction of the wall time the GPU was busy with any stage (one
synchronisation, at the end of a run; counted as stage ``report``).

On the CPU (``device="cpu"``) the same calls run without streams, events or pinned memory, and
the host syncs they stand for are counted all the same.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from gpen_video.device.syncs import HostSyncs

STREAMS = ("detect", "restore", "compose")
STREAM_OF = {"detect": "detect", "track": "detect", "align": "restore", "restore": "restore",
             "temporal": "compose", "paste": "compose"}


class DeviceLane:
    """Streams, events, pinned transfers and sync counts for the stages on one torch device.

    Args:
        device: ``cpu`` or ``cuda[:N]``.
        syncs: where host syncs are counted (default: a new :class:`HostSyncs`).
        timing: bracket :meth:`work` with CUDA events (device time per stage).
    """

    def __init__(self, device: str | Any = "cpu", syncs: HostSyncs | None = None,
                 timing: bool = True) -> None:
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.syncs = syncs if syncs is not None else HostSyncs()
        self.timing = timing and self.cuda
        self._streams = ({name: torch.cuda.Stream(self.device) for name in STREAMS}
                         if self.cuda else {})
        self._lock = threading.Lock()
        self._open: list[tuple[str, Any, Any]] = []  # spans whose end event may be pending
        self._spans: list[tuple[str, float, float]] = []  # (stage, start ms, end ms) from origin
        self._origin = None
        self._origin_time = time.perf_counter()
        if self.timing:
            self._origin = torch.cuda.Event(enable_timing=True)
            self._origin.record(torch.cuda.current_stream(self.device))

    # ---------------------------------------------------------------- streams and events
    def stream(self, stage: str) -> Any:
        """The CUDA stream of ``stage`` (None on the CPU)."""
        return self._streams.get(STREAM_OF.get(stage, stage))

    @contextlib.contextmanager
    def work(self, stage: str) -> Iterator[None]:
        """Queue the block's device work on ``stage``'s stream (timed with events on CUDA)."""
        if not self.cuda:
            yield
            return
        import torch

        stream = self.stream(stage)
        with torch.cuda.stream(stream):
            start = self._event(stream) if self.timing else None
            yield
            if start is not None:
                with self._lock:
                    self._open.append((stage, start, self._event(stream)))
                self._fold(block=False)

    def mark(self, stage: str) -> Any:
        """An event recorded on ``stage``'s stream after the work queued so far (None on the
        CPU): hand it to :meth:`receive` in the stage that uses the results."""
        if not self.cuda:
            return None
        import torch

        event = torch.cuda.Event()
        event.record(self.stream(stage))
        return event

    def receive(self, events: Iterable[Any], tensors: Iterable[Any], stage: str) -> None:
        """Make ``stage``'s stream wait (on the device) for ``events`` and keep ``tensors``'
        memory from being reused until the work ``stage`` queues on them is done."""
        if not self.cuda:
            return
        stream = self.stream(stage)
        seen: set[int] = set()
        for event in events:
            if event is not None and id(event) not in seen:
                seen.add(id(event))
                stream.wait_event(event)
        for tensor in tensors:
            if tensor is not None and getattr(tensor, "is_cuda", False):
                tensor.record_stream(stream)

    # ---------------------------------------------------------------- transfers
    def upload(self, image: np.ndarray, stage: str) -> Any:
        """``image`` (``H×W×C`` numpy) as a ``1×H×W×C`` tensor on the device, queued on
        ``stage``'s stream from a pinned buffer (one host copy, no host sync; ``image`` may be a
        strided view). On the CPU: a tensor sharing ``image``'s memory when it is writeable
        (strides kept: a view of a frame is not copied), else a contiguous copy."""
        import torch

        if not self.cuda:
            shareable = image.flags.writeable and min(image.strides, default=0) >= 0
            host = image if shareable else np.array(image, order="C", copy=True)
            return torch.from_numpy(host)[None]
        staging = torch.empty((1, *image.shape), dtype=_torch_dtype(image.dtype), pin_memory=True)
        np.copyto(staging.numpy()[0], image)
        with torch.cuda.stream(self.stream(stage)):
            return staging.to(self.device, non_blocking=True)

    def download(self, tensor: Any, stage: str) -> np.ndarray:
        """``tensor`` as numpy, read by the host: one counted sync. On CUDA it is copied into a
        pinned buffer on ``stage``'s stream and only that copy is waited for."""
        import torch

        self.syncs.add(stage, "download")
        with self._inside():
            if not self.cuda or not tensor.is_cuda:
                return tensor.detach().cpu().numpy()
            host = torch.empty(tuple(tensor.shape), dtype=tensor.dtype, pin_memory=True)
            stream = self.stream(stage)
            done = torch.cuda.Event()
            with torch.cuda.stream(stream):
                host.copy_(tensor, non_blocking=True)
                done.record(stream)
            done.synchronize()
            return host.numpy()

    def item(self, tensor: Any, stage: str) -> float:
        """One value of ``tensor`` read by the host: one counted sync."""
        self.syncs.add(stage, "item")
        with self._inside():
            return float(tensor)

    def synchronize(self, stage: str) -> None:
        """Wait for everything queued on ``stage``'s stream: one counted sync."""
        self.syncs.add(stage, "synchronize")
        if self.cuda:
            self.stream(stage).synchronize()

    def wait_host(self, event: Any, stage: str) -> None:
        """The host waits for ``event``: one counted sync."""
        self.syncs.add(stage, "event_wait")
        if event is not None:
            event.synchronize()

    # ---------------------------------------------------------------- device time
    def device_times(self) -> tuple[dict[str, float], float | None]:
        """``({stage: device seconds}, busy fraction)`` since this lane was made: the sum of
        each stage's event-timed spans, and the share of the wall time during which any span was
        running (None on the CPU). Waits for the device once (counted as stage ``report``)."""
        if not self.timing:
            return {}, None
        self.syncs.add("report", "synchronize")
        self._fold(block=True)
        wall_ms = 1000.0 * (time.perf_counter() - self._origin_time)
        seconds: dict[str, float] = {}
        for stage, a, b in self._spans:
            seconds[stage] = seconds.get(stage, 0.0) + (b - a) / 1000.0
        busy = _union_ms([(a, b) for _, a, b in self._spans])
        return seconds, (min(1.0, busy / wall_ms) if wall_ms > 0 else None)

    def _event(self, stream: Any) -> Any:
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record(stream)
        return event

    def _fold(self, block: bool) -> None:
        """Turn finished spans into milliseconds (``block``: wait for all of them)."""
        with self._lock:
            still = []
            for stage, start, end in self._open:
                if block:
                    end.synchronize()
                if block or end.query():
                    self._spans.append((stage, self._origin.elapsed_time(start),
                                        self._origin.elapsed_time(end)))
                else:
                    still.append((stage, start, end))
            self._open = still

    # ---------------------------------------------------------------- instrumentation
    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        """Marks the calling thread as inside a counted sync (tests tell counted from stray
        syncs by it: :func:`inside_counted_sync`)."""
        _STATE.depth = getattr(_STATE, "depth", 0) + 1
        try:
            yield
        finally:
            _STATE.depth -= 1


_STATE = threading.local()


def inside_counted_sync() -> bool:
    """Whether the calling thread is inside one of :class:`DeviceLane`'s counted syncs."""
    return getattr(_STATE, "depth", 0) > 0


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16,
            np.dtype(np.float32): torch.float32}[np.dtype(dtype)]


def _union_ms(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total
