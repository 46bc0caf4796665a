"""FP16/BF16 written into the ONNX graph, for strongly typed TensorRT builds.

TensorRT 10.12 deprecated, and TensorRT 11 removed, the builder flags that let it pick FP16 or
BF16 kernels per layer ("weak typing"). A strongly typed network computes every tensor in the type
the graph gives it, so the precision plan has to be in the ONNX: the FP32 export is rewritten so
that the layers chosen by :func:`~gpen_video.engine.precision.plan_onnx` run in the low type and
everything else — the style path, the pinned low resolutions, shape arithmetic — stays FP32, with
Cast nodes only where a tensor crosses between the two regions. The engine's input and output stay
float32.

Why not ``onnxruntime.transformers.float16`` or onnxconverter-common: they wrap each kept node in
its own pair of casts, so a tensor passed between two kept nodes (the demodulation sum feeding its
``Sqrt``, say) is still rounded to FP16 on the way (how often on the exported GPEN:
``benchmarks/RESULTS.md``, "Numbers behind design choices"). NVIDIA's ModelOpt AutoCast does it right but pins onnx and onnxruntime
versions that conflict with this product's.

Conventions: a tensor has one *home* type (where it is stored). A low node reads every float input
in the low type, a kept node reads them in float32; a missing one is made by one Cast per tensor
and type, placed just before its first reader. Float initializers and ``Constant`` values read
only by low nodes are stored in the low type (FP16 saturated to ±65504); the rest stay float32.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gpen_video.errors import GpenVideoError

if TYPE_CHECKING:
    import onnx

    from gpen_video.engine.precision import PinPolicy

BF16_OPSET = 22  # the first opset whose Conv, ConvTranspose, … take bfloat16
FORMAT = 1  # bump when the rewrite changes: it is part of the cached file's name

# Type-polymorphic operators a low-precision region may contain (arithmetic and data movement);
# anything else (Cast, ConstantOfShape, Shape, comparisons, …) keeps the type it has.
LOW_OPS = frozenset({
    "Add", "Concat", "Conv", "ConvTranspose", "Div", "Expand", "Flatten", "Gather", "Gemm",
    "Identity", "LeakyRelu", "MatMul", "Mul", "Pad", "Pow", "ReduceMean", "ReduceSum", "Relu",
    "Reshape", "Sigmoid", "Slice", "Split", "Sqrt", "Squeeze", "Sub", "Tile", "Transpose",
    "Unsqueeze", "Where",
})

_SUFFIX = {1: "fp32", 10: "fp16", 16: "bf16"}  # TensorProto FLOAT, FLOAT16, BFLOAT16


def low_type(precision: str) -> int:
    """The ONNX element type of ``fp16`` / ``bf16``.

    Raises:
        GpenVideoError: another precision.
    """
    from onnx import TensorProto

    types = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
    if precision not in types:
        raise GpenVideoError(f"no mixed-precision graph for {precision!r}: fp16 or bf16")
    return types[precision]


def to_mixed_precision(model: "onnx.ModelProto", precision: str,
                       low_nodes: Collection[str]) -> "onnx.ModelProto":
    """A copy of the FP32 ``model`` whose nodes named in ``low_nodes`` compute in ``precision``.

    Only nodes whose operator is in :data:`LOW_OPS` and that produce a float tensor become low;
    the graph's inputs and outputs stay float32. For BF16 the graph is first converted to opset
    :data:`BF16_OPSET` (``onnx.version_converter``). The result passes ``onnx.checker`` with full
    type inference.

    Raises:
        GpenVideoError: the graph has subgraphs (If/Loop), or the rewrite fails the checker.
    """
    import onnx
    from onnx import TensorProto

    FLOAT = TensorProto.FLOAT
    low = low_type(precision)
    out = _copy_for(model, low)
    graph = out.graph
    types = _element_types(out)  # before anything below changes a type
    wanted = set(low_nodes)
    is_low = [n.name in wanted and n.op_type in LOW_OPS
              and any(types.get(o) == FLOAT for o in n.output) for n in graph.node]
    readers: dict[str, list[bool]] = defaultdict(list)  # float tensor → is_low of each reader
    for node, node_low in zip(graph.node, is_low):
        for name in node.input:
            if name and types.get(name) == FLOAT:
                readers[name].append(node_low)
    home = _lower_constants(graph, is_low, readers, types, low)
    final_casts = _float_outputs(graph, home, low)
    floats = {n for n, t in types.items() if t == FLOAT} | {c.input[0] for c in final_casts}
    _insert_casts(graph, is_low, home, floats, low, final_casts)
    try:
        onnx.checker.check_model(out, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GpenVideoError(f"the {precision} graph is not valid ONNX: {exc}") from None
    return out


def _copy_for(model: "onnx.ModelProto", low: int) -> "onnx.ModelProto":
    """A copy of ``model``, converted to :data:`BF16_OPSET` when ``low`` is BF16 and the opset
    is older (Conv, ConvTranspose, … accept bfloat16 only from opset 22 on).

    Raises:
        GpenVideoError: the graph has subgraphs (If/Loop).
    """
    import onnx
    from onnx import TensorProto

    out = onnx.ModelProto()
    out.CopyFrom(model)
    opset = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), 0)
    if low == TensorProto.BFLOAT16 and opset < BF16_OPSET:
        from onnx import version_converter

        out = version_converter.convert_version(out, BF16_OPSET)
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in out.graph.node for a in n.attribute):
        raise GpenVideoError("mixed precision: graphs with subgraphs (If/Loop) are not supported")
    return out


def _lower_constants(graph: "onnx.GraphProto", is_low: list[bool],
                     readers: dict[str, list[bool]], types: dict[str, int],
                     low: int) -> dict[str, int]:
    """Store initializers and Constants read only by low nodes in ``low`` (in place); returns
    every tensor's element type after the rewrite (its "home" type)."""
    from onnx import TensorProto, numpy_helper

    FLOAT = TensorProto.FLOAT
    home: dict[str, int] = {}
    for inp in graph.input:
        home[inp.name] = inp.type.tensor_type.elem_type
    for init in graph.initializer:
        home[init.name] = init.data_type
        if init.data_type == FLOAT and readers.get(init.name) and all(readers[init.name]):
            init.CopyFrom(_lowered(numpy_helper.to_array(init), low, init.name))
            home[init.name] = low
    for node, node_low in zip(graph.node, is_low):
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            name = node.output[0]
            if value is not None and value.t.data_type == FLOAT and readers.get(name) \
                    and all(readers[name]):
                value.t.CopyFrom(_lowered(numpy_helper.to_array(value.t), low, value.t.name))
                home[name] = low
                continue
        for o in node.output:
            if o and o not in home:
                home[o] = low if (node_low and types.get(o) == FLOAT) else types.get(o, 0)
    return home


def _float_outputs(graph: "onnx.GraphProto", home: dict[str, int], low: int) -> list:
    """Graph outputs stay float32: a low-precision output is renamed (in place) and the Cast
    nodes back to float32 are returned, to be appended last."""
    import onnx
    from onnx import TensorProto

    final_casts = []
    for g_out in graph.output:
        if home.get(g_out.name) == low:
            inner = f"{g_out.name}__{_SUFFIX[low]}"
            for node in graph.node:
                node.output[:] = [inner if o == g_out.name else o for o in node.output]
                node.input[:] = [inner if i == g_out.name else i for i in node.input]
            home[inner] = low
            final_casts.append(onnx.helper.make_node("Cast", [inner], [g_out.name],
                                                     to=TensorProto.FLOAT,
                                                     name=f"{g_out.name}/CastToFloat"))
    return final_casts


def _insert_casts(graph: "onnx.GraphProto", is_low: list[bool], home: dict[str, int],
                  floats: set[str], low: int, final_casts: list) -> None:
    """Put a Cast (one per tensor and type) before every input whose type a node does not
    compute in; ``final_casts`` go last."""
    import onnx
    from onnx import TensorProto

    cast_of: dict[tuple[str, int], str] = {}
    nodes = []
    for node, node_low in zip(graph.node, is_low):
        need = low if node_low else TensorProto.FLOAT
        for k, name in enumerate(node.input):
            have = home.get(name)
            if name not in floats or have == need:
                continue
            key = (name, need)
            if key not in cast_of:
                cast_of[key] = f"{name}__{_SUFFIX[need]}"
                nodes.append(onnx.helper.make_node("Cast", [name], [cast_of[key]], to=need,
                                                   name=f"{name}/CastTo{_SUFFIX[need]}"))
            node.input[k] = cast_of[key]
        nodes.append(node)
    nodes.extend(final_casts)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]


def _element_types(model: "onnx.ModelProto") -> dict[str, int]:
    """Element type of every named tensor of ``model`` (ONNX type inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(g.input) + list(g.output) + list(g.value_info)}
    types.update({i.name: i.data_type for i in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                types[node.output[0]] = value.t.data_type
    return types


def _lowered(array: np.ndarray, low: int, name: str) -> "onnx.TensorProto":
    from onnx import TensorProto, numpy_helper

    if low == TensorProto.FLOAT16:
        limit = float(np.finfo(np.float16).max)
        return numpy_helper.from_array(np.clip(array, -limit, limit).astype(np.float16), name)
    import ml_dtypes

    return numpy_helper.from_array(array.astype(ml_dtypes.bfloat16), name)


def mixed_onnx(onnx_path: Path | str, precision: str, policy: "PinPolicy") -> Path:
    """The ``precision`` version of an FP32 GPEN ONNX file under ``policy``, cached beside it.

    ``<stem>.<precision>-<policy>-m<FORMAT>.onnx``, written once (temp file + rename) and reused:
    it is a pure function of the FP32 file, the policy and :data:`FORMAT`.

    Raises:
        BackendUnavailable: onnx or onnxruntime is missing (the plan needs one CPU run).
        GpenVideoError: the rewrite failed.
    """
    import onnx

    from gpen_video.engine.artifact import check_artifact, damage, write_artifact
    from gpen_video.engine.locking import lock_for
    from gpen_video.engine.precision import plan_onnx

    source = Path(onnx_path)
    tag = policy.name.replace("+", "-")
    target = source.with_name(f"{source.stem}.{precision}-{tag}-m{FORMAT}.onnx")  # see parse_name
    if damage(target) is None:
        return target
    with lock_for(target):
        if check_artifact(target):  # a damaged one: named once, removed, rebuilt
            return target
        plan = plan_onnx(source, policy)
        model = to_mixed_precision(onnx.load(str(source)), precision, plan.low)
        write_artifact(target, model.SerializeToString())
    return target


_NAME = re.compile(r"^(?P<export>.+)\.(?:fp16|bf16)-[a-z-]+-m(?P<format>\d+)\.onnx$")


def parse_name(name: str) -> tuple[str, int] | None:
    """(stem of the FP32 export, rewrite format) of a file named like :func:`mixed_onnx`'s
    output; ``None`` for any other name."""
    m = _NAME.match(name)
    return (m.group("export"), int(m.group("format"))) if m else None
