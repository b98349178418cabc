"""The range scan: which nodes of the fp32 graph leave the fp16 range on the golden inputs.

Every intermediate float tensor of model.onnx becomes a graph output, ONNX Runtime runs the
fp32 graph on each golden input tensor, and each node gets the largest |x| among its float
inputs, its outputs and the intermediates it computes inside (LayerNormalization's squared
deviations, ReduceSumSquare/ReduceL2's sum of squares), so a fused op is judged like its
decomposed chain. A node above 65504 is an island candidate; the others are ranked by how
close they come, for the search to add (stages/host/precision_search.py)."""
import numpy as np

from stages.host.fp16_convert import FP16_MAX
from stages.host.fp16_emulate import FLOAT, tensor_types

SQUARES = ("ReduceSumSquare", "ReduceL2")


def _absmax(a):
    a = np.asarray(a, np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


def _inside(node, values):
    """Largest intermediate a node computes internally, or 0 when it has none of note."""
    x = values.get(node.input[0]) if node.input else None
    if x is None:
        return 0.0
    x = np.asarray(x, np.float64)
    if node.op_type == "LayerNormalization":
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        axes = tuple(range(axis % x.ndim, x.ndim))
        return _absmax((x - x.mean(axis=axes, keepdims=True)) ** 2)
    if node.op_type in SQUARES:
        return _absmax(np.sum(x * x))
    return 0.0


def _exposed(model, float_names):
    import onnx
    m = type(model)()
    m.CopyFrom(model)
    known = set(o.name for o in m.graph.output)
    for name in float_names:
        if name not in known:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, FLOAT, None))
    return m


def tensor_maxima(model, inputs):
    """{tensor: max |x| over all inputs} for every float tensor, plus {node: internal max}."""
    from onnx import numpy_helper
    from stages.host.fp16_emulate import session
    types = tensor_types(model)
    produced = [t for n in model.graph.node for t in n.output if t and types.get(t) == FLOAT]
    sess = session(_exposed(model, produced))
    names = [o.name for o in sess.get_outputs()]
    peaks, inside = {}, {}
    for t in model.graph.initializer:
        if t.data_type == FLOAT:
            peaks[t.name] = _absmax(numpy_helper.to_array(t))
    for feed in inputs:
        values = dict(zip(names, sess.run(names, feed)))
        values.update(feed)
        for name, value in values.items():
            peaks[name] = max(peaks.get(name, 0.0), _absmax(value))
        for node in model.graph.node:
            if node.op_type == "LayerNormalization" or node.op_type in SQUARES:
                inside[node.name] = max(inside.get(node.name, 0.0), _inside(node, values))
    return peaks, inside


def node_ranges(model, inputs):
    """Per node (graph order): name, op, the largest value it sees and where that value is."""
    peaks, inside = tensor_maxima(model, inputs)
    rows = []
    for node in model.graph.node:
        seen = [(peaks[t], "input %s" % t) for t in node.input if t in peaks]
        seen += [(peaks[t], "output %s" % t) for t in node.output if t in peaks]
        if inside.get(node.name):
            seen.append((inside[node.name], "its intermediates"))
        if not seen:
            continue  # shapes and indices only: nothing to keep in fp32
        peak, where = max(seen)
        rows.append({"node": node.name, "op": node.op_type, "outputs": list(node.output),
                     "max_abs": peak, "where": where})
    return rows


def candidates(ranges):
    """The nodes whose values leave the fp16 range, each with its reason."""
    return [dict(r, reason="max |x| %.4g > %d (%s)" % (r["max_abs"], FP16_MAX, r["where"]))
            for r in ranges if r["max_abs"] > FP16_MAX]
