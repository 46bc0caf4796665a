"""Running a serialised TensorRT engine from torch tensors (the named-tensor API of TensorRT 10/11).

Memory and streams are torch's (``torch.cuda`` tensors, pinned host tensors, streams, events), so
the engine shares the caching allocator with the rest of the GPU pipeline and no other CUDA
binding is needed. Per call:

* **device input** (a CUDA tensor, e.g. crops made on the GPU by :mod:`gpen_video.compose.torch_impl`):
  everything stays on the GPU; the engine runs on its compute stream, which waits for the
  caller's stream and is waited on by it (events, no host synchronisation).
* **host input** (numpy / CPU tensor): batches larger than the profile's max are split into
  chunks that flow through two slots (pinned host + device buffers each) and three streams —
  upload, compute, download — so the upload of chunk k+1 and the download of chunk k−1 overlap
  the compute of chunk k. The host waits only on a slot's "downloaded" event before reusing it.

Values: the engine's tensors are the ONNX export's, RGB ``[-1, 1]`` in and raw out; this module
takes and returns the restorers' ``[0, 1]``, mapped on the GPU, in place, by
:func:`gpen_video.models.io.unit_to_model_` / :func:`~gpen_video.models.io.model_to_unit_`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpen_video.engine.trt import import_tensorrt
from gpen_video.errors import GpenVideoError
from gpen_video.models.io import model_to_unit_, unit_to_model_


@dataclass
class _Slot:
    d_in: Any  # max×3×S×S float32, CUDA
    d_out: Any
    h_in: Any  # same, pinned host
    h_out: Any
    uploaded: Any  # torch.cuda.Event
    computed: Any
    downloaded: Any


class EngineRunner:
    """One deserialised engine, one execution context, two buffer slots, three streams."""

    def __init__(self, serialized: bytes, device: str = "cuda:0") -> None:
        import torch

        trt = import_tensorrt()
        self._torch = torch
        self.device = torch.device(device)
        with torch.cuda.device(self.device):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(serialized)
            if self.engine is None:
                raise GpenVideoError("TensorRT could not load the engine (built by another "
                                     "TensorRT version or for another GPU?); delete it or "
                                     "rebuild with gpen-video engine build --force")
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            inputs = [n for n in names
                      if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names
                       if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if len(inputs) != 1 or len(outputs) != 1:
                raise GpenVideoError(f"expected a GPEN engine with one input and one output, "
                                     f"got inputs {inputs} and outputs {outputs}")
            self.input, self.output = inputs[0], outputs[0]
            for name in (self.input, self.output):
                if self.engine.get_tensor_dtype(name) != trt.float32:
                    raise GpenVideoError(f"engine tensor {name} is not float32")
            lo, opt, hi = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input, 0))
            self.min_batch, self.opt_batch, self.max_batch = lo[0], opt[0], hi[0]
            self.size = int(hi[2])
            self.context = self.engine.create_execution_context()
            self.compute = torch.cuda.Stream(self.device)
            self.upload = torch.cuda.Stream(self.device)
            self.download = torch.cuda.Stream(self.device)
            shape = (self.max_batch, 3, self.size, self.size)
            self._slots = [
                _Slot(torch.empty(shape, device=self.device),
                      torch.empty(shape, device=self.device),
                      torch.empty(shape, pin_memory=True), torch.empty(shape, pin_memory=True),
                      torch.cuda.Event(), torch.cuda.Event(), torch.cuda.Event())
                for _ in range(2)
            ]

    @property
    def device_memory_bytes(self) -> int:
        """Activation memory of the execution context (weights and our buffers not included)."""
        size = getattr(self.engine, "device_memory_size_v2", None)
        return int(size if size is not None else self.engine.device_memory_size)

    # ------------------------------------------------------------------ execution
    def _enqueue(self, d_in: Any, d_out: Any) -> None:
        """On the current (compute) stream: normalise, run, denormalise ``n`` faces in place."""
        n = d_in.shape[0]
        unit_to_model_(d_in)
        if not self.context.set_input_shape(self.input, (n, 3, self.size, self.size)):
            raise GpenVideoError(f"the engine does not take a batch of {n} (profile "
                                 f"{self.min_batch}…{self.max_batch})")
        self.context.set_tensor_address(self.input, d_in.data_ptr())
        self.context.set_tensor_address(self.output, d_out.data_ptr())
        if not self.context.execute_async_v3(self.compute.cuda_stream):
            raise GpenVideoError("TensorRT failed to enqueue the engine")
        model_to_unit_(d_out)

    def run_device(self, batch: Any) -> Any:
        """``N×3×S×S`` float32 ``[0, 1]`` CUDA tensor → restored, same shape, on the GPU."""
        torch = self._torch
        out = torch.empty_like(batch)
        caller = torch.cuda.current_stream(self.device)
        self.compute.wait_stream(caller)
        slot = self._slots[0]
        with torch.cuda.stream(self.compute):
            for a in range(0, batch.shape[0], self.max_batch):
                b = min(a + self.max_batch, batch.shape[0])
                d_in, d_out = slot.d_in[:b - a], slot.d_out[:b - a]
                d_in.copy_(batch[a:b])
                self._enqueue(d_in, d_out)
                out[a:b].copy_(d_out)
        caller.wait_stream(self.compute)
        return out

    def run_host(self, batch: Any) -> Any:
        """``N×3×S×S`` float32 ``[0, 1]`` CPU tensor → restored CPU tensor (pipelined)."""
        torch = self._torch
        total = batch.shape[0]
        result = torch.empty_like(batch)
        spans = [(a, min(a + self.max_batch, total)) for a in range(0, total, self.max_batch)]
        pending: list[tuple[int, int] | None] = [None, None]

        def collect(s: int) -> None:
            span = pending[s]
            if span is None:
                return
            slot = self._slots[s]
            slot.downloaded.synchronize()  # also implies its upload and compute are done
            result[span[0]:span[1]].copy_(slot.h_out[:span[1] - span[0]])
            pending[s] = None

        with torch.cuda.device(self.device):
            for k, (a, b) in enumerate(spans):
                s, n = k % 2, b - a
                slot = self._slots[s]
                collect(s)  # the slot's previous chunk (k − 2) must be out before reuse
                slot.h_in[:n].copy_(batch[a:b])
                with torch.cuda.stream(self.upload):
                    slot.d_in[:n].copy_(slot.h_in[:n], non_blocking=True)
                    slot.uploaded.record(self.upload)
                self.compute.wait_event(slot.uploaded)
                with torch.cuda.stream(self.compute):
                    self._enqueue(slot.d_in[:n], slot.d_out[:n])
                    slot.computed.record(self.compute)
                self.download.wait_event(slot.computed)
                with torch.cuda.stream(self.download):
                    slot.h_out[:n].copy_(slot.d_out[:n], non_blocking=True)
                    slot.downloaded.record(self.download)
                pending[s] = (a, b)
            for k in range(len(spans)):
                collect(k % 2)
        return result

    def close(self) -> None:
        """Drop the context, engine and buffers (torch frees the memory)."""
        for name in ("context", "engine", "_runtime", "_slots"):
            if hasattr(self, name):
                delattr(self, name)
