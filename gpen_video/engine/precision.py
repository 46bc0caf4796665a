"""Which layers an FP16 TensorRT engine keeps in FP32.

GPEN's numerically fragile parts are small: the style path (the mapping network, the per-layer
modulation linears, the demodulation sums ``Σ (W·s)²`` and their ``rsqrt``) works on N×C vectors,
not on images, and the lowest resolutions (4 … 32 px) carry the whole face's structure in few
pixels. Keeping them in FP32 costs little time (they are a small share of the FLOPs) and is the
documented remedy for FP16 GPEN ports that degrade visibly.

Policies, tried in order until the quality gate passes (:data:`FP16_POLICIES`):

1. ``style``: every layer whose float outputs are vectors — rank ≤ 2 (N×C), or N×C×1×1 — or
   that belongs to the mapping network, ``final_linear`` or a ``modulation`` linear.
2. ``style+lowres``: the above, plus every layer working at ≤ 32 px.

Layers are recognised by their output shapes and, where a shape is not known before the build
(dynamic spatial sizes), by the module scope in their name, which the ONNX exporter writes
(``/generator/convs.4/conv/Conv``) and TensorRT's ONNX parser keeps as the layer name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PinPolicy:
    """Keep the style path in FP32, and every layer at ≤ ``low_res`` px (0: none)."""

    name: str
    low_res: int = 0


FP16_POLICIES: tuple[PinPolicy, ...] = (PinPolicy("style", 0), PinPolicy("style+lowres", 32))

_VECTOR_SCOPES = ("/generator/style/", "/final_linear/", "/modulation/")


def resolution_from_name(name: str, size: int) -> int | None:
    """The resolution (px) of the GPEN module a node or layer name belongs to, if it says.

    ``/ecdK/…`` → ``size / 2^K``; ``/generator/conv1/``, ``to_rgb1``, ``input`` → 4;
    ``/generator/convs.K/`` → ``8·2^(K//2)``; ``/generator/to_rgbs.J/`` → ``8·2^J``.
    """
    if m := re.search(r"/ecd(\d+)/", name):
        return size >> int(m.group(1))
    if re.search(r"/generator/(conv1|to_rgb1|input)(/|$)", name):
        return 4
    if m := re.search(r"/generator/convs\.(\d+)/", name):
        return 8 << (int(m.group(1)) // 2)
    if m := re.search(r"/generator/to_rgbs\.(\d+)/", name):
        return 8 << int(m.group(1))
    return None


def is_vector(shape: Sequence[int] | None) -> bool:
    """N×C (rank ≤ 2) or N×C×1×1: a per-sample, per-channel vector, not an image."""
    if shape is None:
        return False
    if len(shape) <= 2:
        return True
    return len(shape) == 4 and shape[2] == 1 and shape[3] == 1


def keep_fp32(name: str, output_shapes: Iterable[Sequence[int] | None], size: int,
              policy: PinPolicy) -> bool:
    """Whether the layer ``name`` with float outputs of ``output_shapes`` stays in FP32.

    Shapes may contain -1 (dynamic) or be None (unknown); the name decides then.
    """
    shapes = list(output_shapes)
    if any(scope in name for scope in _VECTOR_SCOPES):
        return True
    if shapes and all(is_vector(s) for s in shapes):
        return True
    if policy.low_res <= 0:
        return False
    for s in shapes:
        if s is not None and len(s) == 4 and s[2] > 0 and s[3] > 0:
            return max(s[2], s[3]) <= policy.low_res
    res = resolution_from_name(name, size)
    return res is not None and res <= policy.low_res


@dataclass(frozen=True)
class PinPlan:
    """The result of a policy on an ONNX graph: pinned nodes and the conv work they hold."""

    policy: PinPolicy
    pinned: frozenset[str]  # node names
    nodes: int  # float-producing nodes considered
    conv_macs: int  # multiply-accumulates of every Conv/ConvTranspose at batch 1
    conv_macs_pinned: int
    floats: frozenset[str] = frozenset()  # names of every float-producing node

    @property
    def low(self) -> frozenset[str]:
        """Float-producing nodes not pinned: the ones an FP16/BF16 graph runs in low precision."""
        return self.floats - self.pinned

    @property
    def pinned_share(self) -> float:
        return self.conv_macs_pinned / self.conv_macs if self.conv_macs else 0.0


def plan_onnx(onnx_path: Path | str, policy: PinPolicy) -> PinPlan:
    """Apply ``policy`` to every node of an exported GPEN, with the real tensor shapes
    (:func:`graph_shapes`, measured once per file and reused by every policy).

    Raises:
        BackendUnavailable: onnx or onnxruntime is missing.
    """
    import numpy as np

    path = Path(onnx_path)
    stat = path.stat()
    shapes = graph_shapes(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    found = shapes.tensors
    pinned: set[str] = set()
    floats: set[str] = set()
    considered = 0
    macs = macs_pinned = 0
    for name, op_type, inputs, outputs in shapes.nodes:
        outs = [found[o][0] for o in outputs if o in found and found[o][1]]
        if not outs:
            continue
        considered += 1
        floats.add(name)
        keep = keep_fp32(name, outs, shapes.size, policy)
        if keep:
            pinned.add(name)
        if op_type in ("Conv", "ConvTranspose") and len(inputs) > 1:
            w = shapes.constants.get(inputs[1])
            if w is None and inputs[1] in found:
                w = found[inputs[1]][0]
            if w is not None:
                k = int(np.prod(w[1:]))  # Conv: Cin/groups·kh·kw; ConvTranspose: Cout·kh·kw
                per = found[inputs[0]][0] if op_type == "ConvTranspose" else outs[0]
                n_macs = int(np.prod(per)) * k  # per output (Conv) / input (Transpose) value
                macs += n_macs
                macs_pinned += n_macs if keep else 0
    return PinPlan(policy, frozenset(pinned), considered, macs, macs_pinned, frozenset(floats))


@dataclass(frozen=True)
class GraphShapes:
    """An ONNX graph's nodes and the measured shape of every tensor they produce."""

    size: int  # crop size (the input's spatial side)
    nodes: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]  # name, op, ins, outs
    constants: dict[str, tuple[int, ...]]  # initializer → shape
    tensors: dict[str, tuple[tuple[int, ...], bool]]  # tensor → (shape, is float)


@functools.lru_cache(maxsize=4)
def graph_shapes(path: str, mtime_ns: int, size_bytes: int) -> GraphShapes:
    """Run the ONNX file at ``path`` at batch 1 on the CPU and record every tensor's shape.

    ``mtime_ns`` and ``size_bytes`` are part of the cache key only (a rewritten file is measured
    again). Static shape inference loses GPEN's spatial sizes after its computed pads, hence the
    run: one up to 256 px, ``(size / 256)²`` above, each a session fetching an interleaved share
    of the tensors, so that memory stays near one 256 px run's worth of activations (about half
    the peak of one run fetching everything, for a little more time: ``benchmarks/RESULTS.md``, "Numbers behind design choices").

    Raises:
        BackendUnavailable: onnx or onnxruntime is missing.
    """
    import numpy as np

    from gpen_video.errors import BackendUnavailable

    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("plan_onnx needs onnx and onnxruntime: "
                                 "pip install 'gpen-video[onnx]'") from None
    model = onnx.load(path)
    graph = model.graph
    size = int(graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    float_outputs = [o for n in graph.node if n.op_type not in ("Constant", "Shape")
                     for o in n.output if o]
    declared = list(graph.output)
    known = {o.name for o in declared}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_cpu_mem_arena = False  # give each share's activations back before the next
    x = np.zeros((1, 3, size, size), np.float32)
    runs = max(1, (size // 256) ** 2)
    found: dict[str, tuple[tuple[int, ...], bool]] = {}
    for k in range(runs):
        share = float_outputs[k::runs]
        del graph.output[:]
        graph.output.extend(declared)
        graph.output.extend(onnx.ValueInfoProto(name=n) for n in share if n not in known)
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        for name, value in zip(share, session.run(share, {graph.input[0].name: x})):
            found[name] = (tuple(value.shape), bool(np.issubdtype(value.dtype, np.floating)))
        del session
    nodes = tuple((n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in graph.node)
    constants = {i.name: tuple(i.dims) for i in graph.initializer}
    return GraphShapes(size, nodes, constants, found)
