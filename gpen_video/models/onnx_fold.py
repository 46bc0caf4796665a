"""Constant folding of an exported ONNX graph: every node whose inputs are all constants is
computed once, here, and replaced by an initializer.

Why: torch's exporter leaves the depthwise FIR kernels of GPEN's blur and upsampling layers as a
small constant subgraph (``ConstantOfShape`` → ``Mul`` → ``Equal`` → ``Where`` → ``Expand``)
feeding the weight input of a ``Conv`` or ``ConvTranspose``. onnxruntime folds that itself;
TensorRT would see convolutions with computed weights, which it handles with restrictions
(deconvolution kernels must be build-time constants). After folding, every convolution's weight is
an initializer.

Values are computed with onnx's reference evaluator, node by node, in graph order. Nodes with
subgraphs and random operators are never folded, nor outputs larger than ``max_bytes``.
``Constant`` nodes whose outputs nobody reads any more are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

_NEVER = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                    "Multinomial", "Bernoulli", "Dropout"})


def fold_constants(model: "onnx.ModelProto", max_bytes: int = 64 << 20) -> int:
    """Fold ``model``'s constant subgraphs in place. Returns how many nodes were removed."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    opsets = {o.domain or "": o.version for o in model.opset_import}
    values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept, folded = [], {}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        foldable = (node.domain in ("", "ai.onnx") and node.op_type not in _NEVER
                    and all(name in values for name in inputs)
                    and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                for a in node.attribute))
        if foldable:
            feeds = {name: values[name] for name in inputs}
            outputs = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
            arrays = [np.asarray(v) for v in outputs]
            if all(a.nbytes <= max_bytes for a in arrays):
                for name, array in zip(node.output, arrays):
                    values[name] = array
                if node.op_type == "Constant":
                    kept.append(node)  # dropped below if its value is folded into its readers
                else:
                    folded.update({name: array for name, array in zip(node.output, arrays)})
                continue
        kept.append(node)

    read = {name for node in kept if node.op_type != "Constant" for name in node.input}
    read |= {o.name for o in graph.output}
    nodes = [n for n in kept if n.op_type != "Constant" or any(o in read for o in n.output)]
    removed = len(graph.node) - len(nodes)
    if not removed:
        return 0
    initializers = [i for i in graph.initializer if i.name in read]
    initializers += [numpy_helper.from_array(array, name) for name, array in folded.items()
                     if name in read]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.value_info[:]  # shapes of removed tensors; onnx.checker infers them again
    return removed
