"""Size and multiply-accumulate count of an ONNX graph (float, int8 QDQ or fp16 alike).

MACs are counted for Conv (incl. depthwise), ConvTranspose, Gemm and MatMul from shapes inferred
with batch 1; element-wise ops are ignored (they are a small share of these CNNs).  Offline tooling
(needs the `onnx` package).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _actual_shapes(model) -> dict:
    """Run the graph once on zeros (batch 1) exposing every tensor, for exact shapes.

    Exact however dynamic the graph's padding or reshapes are.
    """
    import onnx
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in known:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                known.add(o)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=['CPUExecutionProvider'])
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dtype = np.float16 if 'float16' in i.type else np.float32
        feeds[i.name] = np.zeros(shape, dtype)
    names = [o.name for o in sess.get_outputs()]
    shapes = {n: list(v.shape) for n, v in zip(names, sess.run(names, feeds))}
    shapes.update({k: list(v.shape) for k, v in feeds.items()})
    return shapes


def graph_macs(path) -> int:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    shapes = _actual_shapes(model)
    inits = {i.name: list(numpy_helper.to_array(i).shape) for i in model.graph.initializer}
    # QDQ graphs: a weight reaches Conv through DequantizeLinear; follow it back to its shape.
    produced_by = {o: n for n in model.graph.node for o in n.output}

    def weight_shape(name):
        if name in inits:
            return inits[name]
        node = produced_by.get(name)
        if node is not None and node.op_type in ('DequantizeLinear', 'Cast', 'Identity'):
            return weight_shape(node.input[0])
        return shapes.get(name)

    macs = 0
    for n in model.graph.node:
        if n.op_type in ('Conv', 'ConvTranspose'):
            w = weight_shape(n.input[1])
            out = shapes.get(n.output[0])
            if w and out:
                if n.op_type == 'Conv':  # out elements x (in/groups) x kh x kw
                    macs += int(np.prod(out)) * int(np.prod(w[1:]))
                else:
                    macs += int(np.prod(shapes.get(n.input[0], [0]))) * int(np.prod(w[1:]))
        elif n.op_type in ('Gemm', 'MatMul'):
            a, b = shapes.get(n.input[0]), weight_shape(n.input[1])
            if a and b:
                macs += int(np.prod(a[:-1])) * int(a[-1]) * int(
                    b[-1] if n.op_type == 'MatMul' or not _trans_b(n) else b[0])
    return macs


def _trans_b(node) -> bool:
    return any(a.name == 'transB' and a.i == 1 for a in node.attribute)


def graph_size_bytes(path) -> int:
    return Path(path).stat().st_size
