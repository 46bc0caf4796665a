"""Replaying a network's forward pass as a captured CUDA graph, one graph per batch shape.

GPEN-BFR-512 is a few hundred small kernels per face batch; launched one by one from Python
they leave an H100 idle between kernels at small batches. A CUDA graph records the launches once
and replays them with one call. The pipeline sends batches of one size (``--batch``) and a last,
partial one, so a handful of graphs covers a whole run.

Rules (torch's): a graph reads its input from, and writes its output to, fixed device buffers;
capture happens on a side stream after warm-up passes; replays are ordered on the current stream.
Each graph keeps its own activation memory, so the number of graphs is capped (``limit``); shapes
beyond it, and everything after a capture that fails, run eagerly — slower, never wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("gpen_video.backends")


class GraphedForward:
    """``fn(x)`` for CUDA tensors ``x``, replayed from a CUDA graph captured per (shape, dtype).

    Args:
        fn: the forward pass: one CUDA tensor in, one CUDA tensor out, no host synchronisation.
        limit: most graphs kept (each holds its activations' memory).
        warmup: eager passes on the side stream before a capture (cuDNN picks its algorithms).

    The returned tensor is a copy: the next replay overwrites the graph's output buffer.
    """

    def __init__(self, fn: Callable[[Any], Any], limit: int = 4, warmup: int = 2) -> None:
        self._fn = fn
        self.limit = limit
        self.warmup = warmup
        self._graphs: dict[tuple, tuple[Any, Any, Any]] = {}
        self.disabled = False  # set after a failed capture: eager from then on

    @property
    def captured(self) -> int:
        """How many graphs are held."""
        return len(self._graphs)

    def __call__(self, x: Any) -> Any:
        key = (tuple(x.shape), x.dtype, x.device, x.is_contiguous())
        entry = self._graphs.get(key)
        if entry is None:
            if self.disabled or len(self._graphs) >= self.limit:
                return self._fn(x)
            entry = self._capture(x, key)
            if entry is None:
                return self._fn(x)
        static_in, graph, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: Any, key: tuple) -> tuple[Any, Any, Any] | None:
        import torch

        static_in = x.clone()  # same strides (channels_last stays channels_last)
        caller = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(caller)
        try:
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    self._fn(static_in)
            caller.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._fn(static_in)
        except RuntimeError as exc:
            self.disabled = True
            logger.warning("CUDA graph capture failed (%s); running the network eagerly",
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return None
        entry = (static_in, graph, static_out)
        self._graphs[key] = entry
        return entry
