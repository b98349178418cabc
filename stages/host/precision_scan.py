"""The range scan: which nodes of the fp32 graph leave the fp16 range on the golden inputs.

ONNX Runtime runs the fp32 graph on each golden input tensor with every float tensor's max |x|
computed in the graph and returned as a scalar (not the tensors: memory), and each node gets
the largest |x| among its float inputs, its outputs and the intermediates it computes inside
(LayerNormalization's squared deviations, ReduceSumSquare/ReduceL2's sum of squares), so a
fused op is judged like its decomposed chain. A node above 65504 is an island candidate; those
within 16x of it are offered to the search as "near range" (stages/host/precision_search.py)."""
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


def _peak_model(model, float_names, inside_inputs):
    """A copy of the graph that outputs max |t| of every float tensor as a scalar (ReduceMax of
    Abs, computed inside ONNX Runtime), and the inputs of the nodes judged by their intermediates:
    a B4 at 512x512 holds gigabytes of intermediates, its peaks a few kilobytes. Each Abs and
    ReduceMax follows its tensor's producer in node order, so ONNX Runtime frees the tensor soon."""
    import onnx
    from onnx import helper
    m = type(model)()
    m.CopyFrom(model)
    wanted = dict((name, i) for i, name in enumerate(float_names))
    peaks, nodes = {}, []

    def measure(name):
        i = wanted[name]
        absolute, peak = "scan:abs:%d" % i, "scan:peak:%d" % i
        nodes.extend([helper.make_node("Abs", [name], [absolute]),
                      helper.make_node("ReduceMax", [absolute], [peak], keepdims=0)])
        m.graph.output.append(helper.make_tensor_value_info(peak, FLOAT, None))
        peaks[peak] = name
    produced = set(o for n in m.graph.node for o in n.output)
    for name in float_names:
        if name not in produced:
            measure(name)  # graph inputs
    for node in m.graph.node:
        nodes.append(node)
        for name in node.output:
            if name in wanted:
                measure(name)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    known = set(o.name for o in m.graph.output)
    for name in inside_inputs:
        if name not in known:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, FLOAT, None))
    return m, peaks


def tensor_maxima(model, inputs, progress=None):
    """{tensor: max |x| over all inputs} for every float tensor, plus {node: internal max}."""
    from onnx import numpy_helper
    from stages.host.fp16_emulate import session
    types = tensor_types(model)
    graph_inputs = [i.name for i in model.graph.input]
    produced = [t for n in model.graph.node for t in n.output if t and types.get(t) == FLOAT]
    judged = [n for n in model.graph.node
              if n.op_type == "LayerNormalization" or n.op_type in SQUARES]
    scan, names = _peak_model(model, [t for t in graph_inputs if types.get(t) == FLOAT] + produced,
                              [n.input[0] for n in judged])
    sess = session(scan)
    outputs = [o.name for o in sess.get_outputs() if o.name in names or
               o.name in set(n.input[0] for n in judged)]
    peaks, inside = {}, {}
    for t in model.graph.initializer:
        if t.data_type == FLOAT:
            peaks[t.name] = _absmax(numpy_helper.to_array(t))
    for i, feed in enumerate(inputs):
        values = dict(zip(outputs, sess.run(outputs, feed)))
        for out, value in values.items():
            if out in names:
                peaks[names[out]] = max(peaks.get(names[out], 0.0), float(value))
        for node in judged:
            inside[node.name] = max(inside.get(node.name, 0.0), _inside(node, values))
        del values
        if progress:
            progress(i + 1, len(inputs))
    return peaks, inside


def node_ranges(model, inputs, progress=None):
    """Per node (graph order): name, op, the largest value it sees and where that value is."""
    peaks, inside = tensor_maxima(model, inputs, progress)
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
