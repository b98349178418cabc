"""One emulation graph for every island set: the search's previews without a rewrite per preview.

fp16_emulate emulates one typed (mixed) model; building it costs a conversion, a shape inference
and a new ONNX Runtime session per island set, which on a SegFormer-B4 is most of a preview. Here
the fp32 graph is rewritten once with the same storage rule, and each node that the search may
keep in fp32 (a "switchable" node) gets a bool input `island:<node>`:
- a tensor made by a fixed (always fp16) node is rounded to fp16 where it is made;
- a tensor made by a switchable node (or a graph input) is read as is by a consumer only when
  both are fp32 islands, and rounded otherwise (the converter's Casts, join_islands' rule);
- an initializer is rounded (clamped to +-65504) for fp16 consumers, kept for island ones.
Each op computes in fp32 (ORT, optimizations off), as in fp16_emulate. A preview is then one
session run per golden image with other bool feeds. The export is fixed at 1x3xHxW (its Reshapes
name the batch), so the images run one by one, not as a batch.
`tests/test_precision.py` checks it bit for bit against the converter + fp16_emulate path."""
import numpy as np

from stages.host.fp16_convert import FP16_MAX
from stages.host.fp16_emulate import FLOAT, FLOAT16, session, tensor_types

BOOL = 9  # onnx.TensorProto.BOOL


def flag_name(node_name):
    return "island:" + node_name


class _Rewrite(object):
    """Builds the switchboard graph's nodes; names: t|x the raw value, t|h its fp16 rounding."""

    def __init__(self, model, switchable):
        self.model, self.switchable = model, set(switchable)
        self.types = tensor_types(model)
        self.inits = dict((t.name, t) for t in model.graph.initializer)
        g = model.graph
        self.producer = dict((o, n) for n in g.node for o in n.output if o)
        self.graph_inputs = set(i.name for i in g.input) - set(self.inits)
        self.nodes, self.made, self.new_inits = [], set(), []

    def _add(self, op, inputs, output, **attrs):
        from onnx import helper
        if output not in self.made:
            self.made.add(output)
            self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def rounded(self, t):
        if t in self.inits:
            return self._rounded_init(t)
        raw = self.raw(t)
        half = self._add("Cast", [raw], t + "|f16", to=FLOAT16)
        return self._add("Cast", [half], t + "|h", to=FLOAT)

    def _rounded_init(self, t):
        from onnx import numpy_helper
        name = t + "|h"
        if name not in self.made:
            self.made.add(name)
            a = numpy_helper.to_array(self.inits[t]).astype(np.float32)
            a = np.clip(a, -FP16_MAX, FP16_MAX).astype(np.float16).astype(np.float32)
            self.new_inits.append(numpy_helper.from_array(a, name))
        return name

    def raw(self, t):
        if t in self.inits or t in self.graph_inputs:
            return t
        return t + "|x"

    def edge(self, t, consumer):
        """The name a consumer (a node name, or None for a graph output) reads tensor t as."""
        if self.types.get(t) != FLOAT:
            return t
        own = consumer is not None and consumer in self.switchable
        source = self.producer.get(t)
        if source is not None and source.name not in self.switchable:
            return self.rounded(t)  # always fp16
        if not own and consumer is not None:
            return self.rounded(t)
        flags = [flag_name(consumer)] if consumer is not None else []
        flags += [flag_name(source.name)] if source is not None else []
        if consumer is None and source is None:
            return t
        cond = flags[0] if len(flags) == 1 else self._add(
            "And", flags, "and:%s:%s" % (flags[0], flags[1]))
        return self._add("Where", [cond, self.raw(t), self.rounded(t)],
                         "%s|%s" % (t, cond))

    def node(self, node):
        from onnx import helper
        inputs = [self.edge(t, node.name) if t else t for t in node.input]
        outputs = [self.raw(o) if self.types.get(o) == FLOAT else o for o in node.output]
        copy = helper.make_node(node.op_type, inputs, outputs, name=node.name,
                                domain=node.domain)
        copy.attribute.extend(node.attribute)
        self.nodes.append(copy)


def build(model, switchable):
    """The switchboard model: fp32 graph, fp16 storage, one bool input per switchable node."""
    from onnx import helper
    rw = _Rewrite(model, switchable)
    for node in model.graph.node:
        rw.node(node)
    outputs = []
    for out in model.graph.output:
        value = rw.edge(out.name, None)
        rw.nodes.append(helper.make_node("Identity", [value], [out.name]))
        outputs.append(out)
    used = set(t for n in rw.nodes for t in n.input)
    inits = [t for t in model.graph.initializer if t.name in used] + rw.new_inits
    flags = [helper.make_tensor_value_info(flag_name(n), BOOL, []) for n in sorted(rw.switchable)]
    graph = helper.make_graph(rw.nodes, "switchboard", list(model.graph.input) + flags,
                              outputs, inits)
    return helper.make_model(graph, opset_imports=list(model.opset_import),
                             ir_version=model.ir_version)


class Board(object):
    """A session on the switchboard model; run(islands, feed) -> logits."""

    def __init__(self, model, switchable):
        self.switchable = sorted(set(switchable))
        self.sess = session(build(model, self.switchable))
        self.output = self.sess.get_outputs()[0].name

    def run(self, islands, feed):
        islands = set(islands)
        flags = dict((flag_name(n), np.array(n in islands)) for n in self.switchable)
        flags.update(feed)
        return self.sess.run([self.output], flags)[0]
