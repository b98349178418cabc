"""TEST DOUBLE: the ONNX parser (not TensorRT's). It accepts the operators and opsets of the
onnx-tensorrt table of the emulated release (stages/host/trt_ops/tensorrt-*.json) and builds
layers the way the real parser does for this project's graphs:
- a Softmax becomes an ISoftMaxLayer with an unnamed output plus an IShuffleLayer that carries
  the node's name and its ONNX output name (onnx-tensorrt reshapes around the softmax);
- an initializer used as a tensor input (Add, Mul, MatMul...) becomes a Constant layer, and a
  lower-rank one also a broadcast Shuffle, both unnamed ("(Unnamed Layer* N) [Constant]");
- a layer name already used is renamed NAME_1, NAME_2... (onnx-tensorrt's registerLayer);
- tensor types come from the graph (strongly typed networks) and int64 becomes int32 before 10.0."""
import json
import os

import tensorrt as trt
from tensorrt._base import Pybind, check_buffer
from tensorrt._network import ILayer, ITensor

TABLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "stages",
                      "host", "trt_ops")
TABLE = {"8.0": "8.0", "8.2": "8.2", "8.4": "8.4", "8.5": "8.5", "8.5.3": "8.5", "8.6": "8.6",
         "10": "10", "11": "11"}[trt.API]
KINDS = {"Conv": "CONVOLUTION", "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY",
         "Add": "ELEMENTWISE", "Sub": "ELEMENTWISE", "Mul": "ELEMENTWISE", "Div": "ELEMENTWISE",
         "Pow": "ELEMENTWISE", "Where": "ELEMENTWISE", "Equal": "ELEMENTWISE",
         "ReduceMean": "REDUCE", "ReduceSum": "REDUCE",
         "Sqrt": "UNARY", "Erf": "UNARY", "Exp": "UNARY", "Neg": "UNARY", "Reciprocal": "UNARY",
         "Relu": "ACTIVATION", "Sigmoid": "ACTIVATION", "Tanh": "ACTIVATION", "Reshape": "SHUFFLE",
         "Transpose": "SHUFFLE", "Flatten": "SHUFFLE", "Squeeze": "SHUFFLE", "Unsqueeze": "SHUFFLE",
         "Resize": "RESIZE", "Concat": "CONCATENATION", "Gather": "GATHER", "Slice": "SLICE",
         "MaxPool": "POOLING", "AveragePool": "POOLING", "GlobalAveragePool": "POOLING",
         "Identity": "IDENTITY", "Shape": "SHAPE", "LayerNormalization": "NORMALIZATION",
         "Cast": "CAST", "Softmax": "SOFTMAX", "Split": "SLICE", "Clip": "ACTIVATION",
         "Max": "ELEMENTWISE", "Min": "ELEMENTWISE", "Floor": "UNARY", "Expand": "SLICE",
         "Range": "SHAPE", "ConstantOfShape": "SHAPE", "Not": "UNARY", "Less": "ELEMENTWISE",
         "Greater": "ELEMENTWISE", "And": "ELEMENTWISE", "Tile": "SLICE", "Ceil": "UNARY"}
TENSOR_INPUT_OPS = ("ELEMENTWISE", "MATRIX_MULTIPLY", "CONCATENATION", "GATHER")
ONNX_TYPES = {1: "FLOAT", 10: "HALF", 6: "INT32", 7: "INT64", 9: "BOOL", 3: "INT8", 2: "UINT8",
              16: "BF16"}


def load_table():
    with open(os.path.join(TABLES, "tensorrt-%s.json" % TABLE)) as f:
        return json.load(f)


class ParserError(Pybind):
    def __init__(self, index, node, desc):
        self._i, self._node, self._desc = index, node, desc

    def desc(self):
        return self._desc

    def node(self):
        return self._i

    def code(self):
        return 8  # UNSUPPORTED_NODE

    def file(self):
        return "ModelImporter.cpp"

    def line(self):
        return 0

    def func(self):
        return "importModel"

    def node_name(self):
        return self._node.name if self._node is not None else ""

    def node_operator(self):
        return self._node.op_type if self._node is not None else ""


def _dtype(elem_type):
    name = ONNX_TYPES.get(elem_type, "FLOAT")
    if name == "INT64" and not hasattr(trt.DataType, "INT64"):
        name = "INT32"  # onnx-tensorrt before 10.0 casts INT64 down to INT32
    return trt.DataType[name]


class _Builder(object):
    """Graph -> layers, in the parser's order and naming."""

    def __init__(self, model):
        import onnx
        model = onnx.shape_inference.infer_shapes(model)
        g = model.graph
        self.types = dict((v.name, v.type.tensor_type.elem_type) for v in
                          list(g.value_info) + list(g.input) + list(g.output))
        self.weights = dict((i.name, list(i.dims)) for i in g.initializer)
        self.layers, self.tensors, self.names = [], {}, {}

    def tensor(self, name, shape=(), elem_type=None):
        t = ITensor(name, shape,
                    _dtype(elem_type if elem_type is not None else self.types.get(name, 1)))
        self.tensors[name] = t
        return t

    def add(self, kind, name, inputs, outputs):
        base = name or "(Unnamed Layer* %d) [%s]" % (len(self.layers), kind.title())
        n = self.names.get(base, 0)
        self.names[base] = n + 1
        layer = ILayer(base if n == 0 else "%s_%d" % (base, n), getattr(trt.LayerType, kind),
                       inputs, outputs)
        self.layers.append(layer)
        return layer

    def unnamed(self, kind, inputs, elem_type):
        name = "(Unnamed Layer* %d) [%s]_output" % (len(self.layers), kind.title())
        return self.add(kind, "", inputs, [self.tensor(name, (), elem_type)]).get_output(0)

    def constant(self, name, rank):
        out = self.unnamed("CONSTANT", [], self.types.get(name, 1))
        if len(self.weights[name]) < rank:  # broadcast helper
            out = self.unnamed("SHUFFLE", [out], self.types.get(name, 1))
        return out

    def node(self, node):
        if node.op_type == "Constant":  # weights, until a node needs them as a tensor
            value = [a.t for a in node.attribute if a.name == "value"]
            self.weights[node.output[0]] = list(value[0].dims) if value else []
            return
        kind = KINDS[node.op_type]
        rank = max([len(self.weights.get(i, [])) for i in node.input] + [4])
        inputs = []
        for name in node.input:
            if name in self.tensors:
                inputs.append(self.tensors[name])
            elif name in self.weights and kind in TENSOR_INPUT_OPS:
                inputs.append(self.constant(name, rank))
        if node.op_type == "Softmax":
            inputs = [self.unnamed("SOFTMAX", inputs, self.types.get(node.output[0], 1))]
            kind = "SHUFFLE"
        self.add(kind, node.name, inputs, [self.tensor(t) for t in node.output])


class OnnxParser(Pybind):
    def __init__(self, network, logger):
        if not isinstance(network, trt.INetworkDefinition) or not isinstance(logger, trt.ILogger):
            raise TypeError("incompatible constructor arguments: OnnxParser(network, logger)")
        self._network, self._logger, self._errors = network, logger, []

    def _check(self, model):
        table, kinds = load_table(), dict(KINDS, Constant="CONSTANT")
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        if opset > table["opset_max"]:
            self._errors.append(ParserError(-1, model.graph.node[0], "opset %d is above %d" % (
                opset, table["opset_max"])))
        for i, node in enumerate(model.graph.node):
            if node.op_type not in table["supported"] or node.op_type not in kinds:
                self._errors.append(ParserError(i, node,
                                                "No importer registered for op: %s" % node.op_type))
        if self._network._implicit_batch:
            self._errors.append(ParserError(-1, None, "Network must have an explicit batch "
                                                      "dimension (create it with "
                                                      "NetworkDefinitionCreationFlag."
                                                      "EXPLICIT_BATCH)"))
        return not self._errors

    def parse(self, model, path=None):
        import onnx
        data = check_buffer(model, "model")
        try:
            proto = onnx.load_from_string(data)
        except Exception as e:
            self._errors.append(ParserError(-1, None, "cannot read the model: %s" % e))
            return False
        if not self._check(proto):
            return False
        b = _Builder(proto)
        dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
        inputs = [b.tensor(v.name, dims(v), v.type.tensor_type.elem_type) for v in proto.graph.input
                  if v.name not in b.weights]
        for node in proto.graph.node:
            b.node(node)
        outputs = [b.tensors[v.name] for v in proto.graph.output]
        for v, t in zip(proto.graph.output, outputs):
            t._shape = tuple(dims(v))
        self._network._load(data, b.layers, inputs, outputs)
        return True

    def parse_from_file(self, path):
        with open(path, "rb") as f:
            return self.parse(f.read(), path)

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index]

    def clear_errors(self):
        self._errors = []

    def supports_model(self, model, path=None):
        return self.parse(model), []

    def supports_operator(self, op_name):
        return op_name in load_table()["supported"]
