"""A faithful host emulation of fp16 storage, for the precision preview.

ONNX Runtime's CPU provider cannot show fp16 overflow: it has no fp16 kernels for ops such as
Pow and ReduceMean, so it wraps whole chains of them in casts and computes them in fp32 (an
fp16 model whose LayerNorm squares reach 866,000 keeps 100 % mask agreement there). Here a
typed model (fp16 tensors, fp32 islands, Cast nodes) is rewritten into an fp32 graph in which
every tensor that is fp16 in the typed model passes through Cast->fp16->Cast->fp32 right where
it is produced: each op computes in fp32 and its result is stored in fp16, as in TensorRT's fp16
kernels (fp32 accumulation, fp16 output). Run with graph optimizations off, so no cast is folded.
`tests/test_precision.py` checks it against numpy float16 step by step, overflow to inf included."""
import numpy as np

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16


def tensor_types(model):
    """Element type of every tensor the graph names (after shape inference)."""
    import onnx
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    types = dict((v.name, v.type.tensor_type.elem_type)
                 for v in list(g.input) + list(g.output) + list(g.value_info))
    types.update((t.name, t.data_type) for t in g.initializer)
    return types


def _to_fp32_tensor(tensor):
    from onnx import numpy_helper
    out = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)
    tensor.CopyFrom(out)


def _upcast_attributes(node):
    """Cast(to=fp16) becomes Cast(to=fp32) (the rounding follows it); fp16 constants become fp32."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT16:
            attr.i = FLOAT
        if attr.type == attr.TENSOR and attr.t.data_type == FLOAT16:
            _to_fp32_tensor(attr.t)


def emulate_fp16_storage(typed_model):
    """The typed model as an fp32 graph that rounds every fp16 tensor to fp16 where it is made."""
    from onnx import helper
    model = type(typed_model)()
    model.CopyFrom(typed_model)
    types = tensor_types(model)
    g = model.graph
    for init in g.initializer:
        if init.data_type == FLOAT16:
            _to_fp32_tensor(init)  # fp16 values are exact in fp32: the rounding already happened
    nodes = []
    for node in g.node:
        _upcast_attributes(node)
        nodes.append(node)
        for i, name in enumerate(node.output):
            if name and types.get(name) == FLOAT16:
                node.output[i] = name + "/fp32"
                nodes.append(helper.make_node("Cast", [name + "/fp32"], [name + "/fp16"],
                                              to=FLOAT16, name=name + "/store_fp16"))
                nodes.append(helper.make_node("Cast", [name + "/fp16"], [name], to=FLOAT,
                                              name=name + "/load_fp16"))
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type == FLOAT16:
            raise ValueError("graph input/output %s is fp16: convert with keep_io_types" % v.name)
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return model


def session(model):
    """An ONNX Runtime CPU session with every graph optimization off, so the casts stay."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False  # give each run's memory back (the precision budget)
    # nodes in graph order: the range scan's ReduceMax of each tensor then runs right after its
    # producer (the default order left a B4's intermediates alive: 5 GB instead of 0.5 GB)
    opts.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
