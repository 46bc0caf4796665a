"""A roofline of a network's forward pass: every aten op traced (on the meta device: no memory,
no time), its FLOPs and the bytes it reads and writes, and the time each would take at the
device's limits.

Two models of the same trace:

* **eager** — every op is its own kernel: time = Σ max(FLOPs / peak, bytes / bandwidth).
* **compiled** — what a fusing compiler can reach: the element-wise ops between two matrix ops
  (convolutions, matmuls) run as one kernel that reads each tensor coming from outside the run
  once and writes only what is read after it (by a matrix op, a later run, or the output);
  matrix ops as in eager.

Views (``view``, ``expand``, ``slice``, …) move nothing. FLOPs of matrix ops come from
``torch.utils.flop_counter`` (2 per multiply-add); an element-wise op counts one per output
element. It is a floor, not a prediction: real kernels reach a fraction of both limits.

Device limits: :data:`MODELED_GPUS` (tensor-core peaks from :mod:`gpen_video.device.peak`'s
per-SM rates at the datasheet clock, and the HBM bandwidth of the datasheet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import conv_flop_count, flop_registry

from gpen_video.device.peak import peak_from

MATRIX_OPS = frozenset({"convolution", "_convolution", "conv2d", "conv_transpose2d", "mm",
                        "addmm", "bmm", "baddbmm", "linear", "matmul"})
ALLOCATIONS = frozenset({"empty", "empty_like", "empty_strided", "new_empty"})  # write nothing


@dataclass(frozen=True)
class ModeledGpu:
    """A GPU as its datasheet describes it: SMs, the clock its tensor peak is quoted at, HBM
    bandwidth."""

    name: str
    capability: tuple[int, int]
    sms: int
    clock_mhz: float
    bandwidth: float  # bytes/s

    def peak(self, precision: str) -> float:
        rate = {"fp32": "tf32"}.get(precision, precision)  # fp32 convs run as TF32 by default
        return float(peak_from(self.name, self.capability, self.sms, self.clock_mhz, rate).flops)


MODELED_GPUS = {
    "H100": ModeledGpu("NVIDIA H100 SXM", (9, 0), 132, 1830.0, 3.35e12),  # 989 TFLOP/s fp16
    "H200": ModeledGpu("NVIDIA H200", (9, 0), 132, 1830.0, 4.8e12),
}


@dataclass
class Op:
    """One traced aten op."""

    name: str  # overload packet, e.g. "convolution"
    flops: float
    reads: list[tuple[int, int]]  # (tensor id, bytes) of the tensors it reads
    writes: list[tuple[int, int]]  # (tensor id, bytes) it writes
    matrix: bool
    segment: int = 0  # matrix ops seen before it


@dataclass
class Trace:
    ops: list[Op] = field(default_factory=list)
    output: int = -1  # id of the forward's output

    @property
    def flops(self) -> float:
        return sum(op.flops for op in self.ops)

    def bytes_eager(self) -> float:
        return float(sum(b for op in self.ops for _, b in op.reads + op.writes))

    def by_class(self) -> dict[str, dict[str, float]]:
        """FLOPs and eager bytes per op name."""
        out: dict[str, dict[str, float]] = {}
        for op in self.ops:
            row = out.setdefault(op.name, {"calls": 0, "flops": 0.0, "bytes": 0.0})
            row["calls"] += 1
            row["flops"] += op.flops
            row["bytes"] += sum(b for _, b in op.reads + op.writes)
        return out


class _Tracer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.trace = Trace()
        self._ids: dict[int, int] = {}  # storage key -> tensor id
        self._keep: list[Any] = []  # keeps storages alive so their keys stay unique
        self._segment = 0

    def _id(self, t: torch.Tensor) -> int:
        """One id per storage: views and in-place results are their base's tensor."""
        key = t.untyped_storage()._cdata
        if key not in self._ids:
            self._ids[key] = len(self._ids)
            self._keep.append(t)  # alive, so its storage's address is never reused
        return self._ids[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        name = packet.__name__
        if any(r.alias_info is not None and not r.alias_info.is_write
               for r in func._schema.returns):
            return out  # a view moves nothing
        tensors_in = [a for a in _flatten((args, kwargs)) if isinstance(a, torch.Tensor)]
        tensors_out = [o for o in _flatten(out) if isinstance(o, torch.Tensor)]
        if name in ALLOCATIONS:
            self._id(out)
            return out
        matrix = name in MATRIX_OPS
        if name in ("conv2d", "conv_transpose2d"):  # seen before their decomposition on meta
            flops = float(conv_flop_count(list(args[0].shape), list(args[1].shape),
                                          list(out.shape), transposed=name == "conv_transpose2d"))
        elif name == "linear":
            flops = 2.0 * out.numel() * args[0].shape[-1]
        elif packet in flop_registry:
            flops = float(flop_registry[packet](*args, **kwargs, out_val=out))
        else:
            flops = float(sum(o.numel() for o in tensors_out))
        reads = [(self._id(t), t.numel() * t.element_size()) for t in tensors_in]
        writes = [(self._id(o), o.numel() * o.element_size()) for o in tensors_out]
        if matrix:
            self._segment += 1
        self.trace.ops.append(Op(name, flops, reads, writes, matrix, self._segment))
        return out


def _flatten(obj: Any):
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _flatten(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _flatten(item)
    else:
        yield obj


def trace_forward(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Trace:
    """Every aten op of ``forward(x)`` (run it on the meta device to cost nothing)."""
    tracer = _Tracer()
    with torch.inference_mode(), tracer:
        y = forward(x)
    tracer.trace.output = tracer._id(y)
    return tracer.trace


def modeled_seconds(trace: Trace, peak: float, bandwidth: float, compiled: bool) -> float:
    """Time of the traced forward at ``peak`` FLOP/s and ``bandwidth`` bytes/s (see the module
    docstring for the eager and compiled models)."""
    if not compiled:
        return sum(max(op.flops / peak, sum(b for _, b in op.reads + op.writes) / bandwidth)
                   for op in trace.ops)
    producer: dict[int, Op] = {}
    for op in trace.ops:
        for tid, _ in op.writes:
            producer.setdefault(tid, op)
    # a tensor is stored if a matrix op, an op of another run, or the caller reads it
    stored: set[int] = {trace.output}
    for op in trace.ops:
        for tid, _ in op.reads:
            made = producer.get(tid)
            if made is not None and not made.matrix and (op.matrix or op.segment != made.segment):
                stored.add(tid)
    total = 0.0
    run_flops = 0.0
    run_reads: dict[int, int] = {}  # a fused kernel reads each outside tensor once …
    run_writes: dict[int, int] = {}  # … and writes each stored tensor once, whole
    run_segment = None
    for op in trace.ops:
        if op.matrix:
            total += max(op.flops / peak, sum(b for _, b in op.reads + op.writes) / bandwidth)
            continue
        if run_segment is not None and op.segment != run_segment:
            total += max(run_flops / peak,
                         (sum(run_reads.values()) + sum(run_writes.values())) / bandwidth)
            run_flops, run_reads, run_writes = 0.0, {}, {}
        run_segment = op.segment
        run_flops += op.flops
        for tid, b in op.reads:
            made = producer.get(tid)
            if made is None or made.matrix or made.segment != op.segment:
                run_reads[tid] = max(run_reads.get(tid, 0), b)  # from memory
        for tid, b in op.writes:
            if tid in stored:
                run_writes[tid] = max(run_writes.get(tid, 0), b)
    total += max(run_flops / peak, (sum(run_reads.values()) + sum(run_writes.values()))
                 / bandwidth)
    return total
