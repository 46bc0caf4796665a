"""Replaying a network's forward pass from CUDA graphs captured once, at load, per batch size.

GPEN-BFR-512 is a few hundred small kernels per face batch; launched one by one from Python
they leave an H100 idle between kernels at small batches. A CUDA graph records the launches once
and replays them with one call.

When graphs are captured matters more than how. PyTorch's capture (global mode) forbids CUDA work
on *other* threads while it runs ("operation not permitted when stream is capturing"), and the
pipeline's detector and compositing threads use CUDA. So every graph is captured in
:meth:`GraphedForward.prepare`, which the restorer's ``load()`` calls before any pipeline thread
starts, and never later:

* The batch sizes are planned up front (:func:`plan_batch_sizes`: 1, 2, 4, … up to the largest
  batch, and that batch itself) and fixed from then on (:attr:`GraphedForward.sizes`).
* A batch of ``n`` faces replays the graph of the smallest planned size ``≥ n``; the missing rows
  are zeros, computed and dropped (GPEN treats every face of a batch independently, so the real
  rows are the same as without padding). A batch larger than the largest size is cut into pieces.
* All graphs share one memory pool, captured largest first, so the activations are held once
  (not once per size). Outputs are cloned after each replay: the next replay reuses the buffers;
  a replay on another stream than the last one waits for it (on the device).
* If a capture fails, the forward pass runs eagerly from then on (slower, never wrong), with one
  warning; it is never retried mid-run.

Without CUDA (``capture=False``) the same plan and padding run eagerly: that is how the planning
and the padding are tested on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("gpen_video.backends")


def plan_batch_sizes(largest: int) -> tuple[int, ...]:
    """The batch sizes to capture for batches of up to ``largest`` faces: powers of two below it
    and ``largest`` itself (8 → 1, 2, 4, 8; 12 → 1, 2, 4, 8, 12). At most 2× the work of a
    partial batch is padding.

    Raises:
        ValueError: ``largest`` < 1.
    """
    if largest < 1:
        raise ValueError(f"the largest batch must be at least 1, got {largest}")
    sizes = []
    size = 1
    while size < largest:
        sizes.append(size)
        size *= 2
    sizes.append(largest)
    return tuple(sizes)


def padded_size(n: int, sizes: Sequence[int]) -> int:
    """The smallest of ``sizes`` (ascending) that holds ``n`` rows; the largest when none does
    (the caller cuts the batch into pieces of that size)."""
    for size in sizes:
        if size >= n:
            return size
    return sizes[-1]


class GraphedForward:
    """``fn(x)`` for batches ``x`` (``N×…`` tensors), replayed from graphs captured in
    :meth:`prepare` for a fixed set of batch sizes.

    Args:
        fn: the forward pass: one tensor in, one tensor out, rows independent of each other, no
            host synchronisation inside.
        sizes: the batch sizes (see :func:`plan_batch_sizes`); sorted and deduplicated here.
        capture: capture CUDA graphs (``False``: same plan and padding, run eagerly).
        warmup: eager passes per size before its capture (cuDNN picks its algorithms then).

    Attributes:
        sizes: the planned batch sizes, fixed at construction.
        prepared: :meth:`prepare` has run (graphs captured, or eager when capture is off or
            failed).
        calls: how many forward passes ran per padded size (replays or eager).
    """

    def __init__(self, fn: Callable[[Any], Any], sizes: Sequence[int], *, capture: bool = True,
                 warmup: int = 2) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"batch sizes must be positive, got {tuple(sizes)}")
        self._fn = fn
        self.sizes: tuple[int, ...] = tuple(sorted(set(int(s) for s in sizes)))
        self.capture = capture
        self.warmup = warmup
        self.prepared = False
        self.disabled = False  # a capture failed: eager from then on
        self.calls: dict[int, int] = {s: 0 for s in self.sizes}
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}  # size → (input, graph, output)
        self._last_stream = None  # the stream of the last replay (graphs share their memory)

    @property
    def captured(self) -> int:
        """How many graphs are held."""
        return len(self._graphs)

    @property
    def captured_sizes(self) -> tuple[int, ...]:
        """The batch sizes that replay a graph (the others run eagerly, padded alike)."""
        return tuple(sorted(self._graphs))

    # ---------------------------------------------------------------- load time
    def prepare(self, example: Any) -> "GraphedForward":
        """Capture one graph per planned size (largest first, one shared memory pool).

        ``example``: one input row (``1×…``) with the dtype, device and memory format the calls
        will use. Call it before any other thread may issue CUDA work; later calls do nothing.
        """
        if self.prepared:
            return self
        self.prepared = True
        if not self.capture:
            return self
        import torch

        pool = None
        try:
            for size in reversed(self.sizes):
                static_in = _rows(example, size)
                self._graphs[size] = self._capture_one(static_in, pool)
                pool = self._graphs[size][1].pool()
            torch.cuda.current_stream(example.device).synchronize()
        except RuntimeError as exc:
            self._graphs.clear()
            self.disabled = True
            logger.warning("CUDA graph capture at load failed (%s); running the network eagerly",
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return self

    def _capture_one(self, static_in: Any, pool: Any) -> tuple[Any, Any, Any]:
        import torch

        caller = torch.cuda.current_stream(static_in.device)
        side = torch.cuda.Stream(static_in.device)
        side.wait_stream(caller)
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self._fn(static_in)
        caller.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            static_out = self._fn(static_in)
        return static_in, graph, static_out

    # ---------------------------------------------------------------- calls
    def __call__(self, x: Any) -> Any:
        import torch

        n = int(x.shape[0])
        largest = self.sizes[-1]
        if n > largest:
            return torch.cat([self(x[i:i + largest]) for i in range(0, n, largest)])
        size = padded_size(n, self.sizes)
        self.calls[size] += 1
        entry = self._graphs.get(size)
        if entry is None:  # capture off or failed: same padding, eager
            return self._fn(_pad(x, size))[:n]
        static_in, graph, static_out = entry
        stream = torch.cuda.current_stream(x.device)
        if self._last_stream is not None and self._last_stream != stream:
            stream.wait_stream(self._last_stream)  # one pool: never two replays at once
        self._last_stream = stream
        static_in[:n].copy_(x)
        if n < size:
            static_in[n:].zero_()
        graph.replay()
        return static_out[:n].clone()


def _rows(example: Any, size: int) -> Any:
    """``size`` zero rows shaped, typed and laid out like ``example``'s first row."""
    import torch

    row = example[:1]
    fmt = (torch.channels_last if row.dim() == 4 and not row.is_contiguous()
           and row.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
    shape = (size, *row.shape[1:])
    return torch.zeros(shape, dtype=row.dtype, device=row.device).contiguous(memory_format=fmt)


def _pad(x: Any, size: int) -> Any:
    """``x`` with zero rows appended up to ``size`` rows (``x`` itself when it has them)."""
    n = int(x.shape[0])
    if n >= size:
        return x
    out = _rows(x, size)
    out[:n].copy_(x)
    return out
