"""The graph rewrite: fp32 model.onnx -> mixed precision (fp16 compute, fp32 islands).

onnxconverter-common's float16 converter does the rewrite (README "fp16: the precision link"
says why this one and not ModelOpt AutoCast): fp32 graph inputs and outputs, every node fp16
except the islands, and a Cast node on each edge between an fp16 node and an fp32 island.
Its defaults are not plain fp16 rounding, so they are overridden here:
- initializers are clamped to [1e-7, 1e4] by default; here only to +-65504, so a weight is
  rounded as fp16 rounds it (tiny ones to subnormals or zero; beyond 65504 to +-65504, not inf);
- its default op block list keeps Resize, Min, Max, Range... in fp32 for ONNX Runtime's sake;
  here no op is kept in fp32 by type, only the islands that the data asked for."""
import warnings

FP16_MAX = 65504.0


def tool():
    import onnxconverter_common
    return {"name": "onnxconverter-common (float16.convert_float_to_float16)",
            "version": onnxconverter_common.__version__}


def to_mixed(model, islands):
    """A copy of `model` in fp16 with the nodes named in `islands` kept in fp32."""
    from onnxconverter_common import float16
    copy = type(model)()
    copy.CopyFrom(model)
    unshare_initializers(copy, islands)
    with warnings.catch_warnings():  # it warns for each clamped weight; the preview measures them
        warnings.simplefilter("ignore")
        mixed = float16.convert_float_to_float16(
            copy, min_positive_val=0.0, max_finite_val=FP16_MAX, keep_io_types=True,
            op_block_list=[], node_block_list=sorted(islands), check_fp16_ready=True)
    return fp32_outputs(join_islands(mixed))


def fp32_outputs(mixed):
    """Keep the graph outputs fp32 when an island makes them: the converter (keep_io_types) then
    casts the island's fp32 output to fp16 and declares the graph output fp16. Here that last
    Cast goes to fp32, and the output is declared fp32, as with every other producer."""
    from onnx import TensorProto
    producer = dict((o, n) for n in mixed.graph.node for o in n.output)
    for out in mixed.graph.output:
        cast = producer.get(out.name)
        if out.type.tensor_type.elem_type == TensorProto.FLOAT16 and cast is not None \
                and _cast_to(cast) == TensorProto.FLOAT16:
            next(a for a in cast.attribute if a.name == "to").i = TensorProto.FLOAT
            out.type.tensor_type.elem_type = TensorProto.FLOAT
    return mixed


def unshare_initializers(model, islands):
    """Give the islands their own copy of every initializer that an fp16 node reads too.

    onnx-simplifier merges equal initializers (a random checkout's zero biases, say), and the
    converter keeps a shared one fp32 for the island without casting it for the fp16 node: a
    Conv with an fp16 input and an fp32 bias, which TensorRT's parser refuses (seen with
    TensorRT-RTX on a SegFormer-B4-size export with LayerNormalization nodes)."""
    inits = dict((t.name, t) for t in model.graph.initializer)
    users = {}
    for n in model.graph.node:
        for name in n.input:
            if name in inits:
                users.setdefault(name, set()).add(n.name in islands)
    for name in [k for k, v in users.items() if v == {True, False}]:
        twin = type(inits[name])()
        twin.CopyFrom(inits[name])
        twin.name = name + "__fp32_island"
        model.graph.initializer.append(twin)
        for n in model.graph.node:
            if n.name in islands:
                for i, x in enumerate(n.input):
                    if x == name:
                        n.input[i] = twin.name


def join_islands(mixed):
    """Remove the fp32 -> fp16 -> fp32 round trips the converter leaves between two fp32 nodes.

    When an island's output also feeds an fp16 node, the converter casts it to fp16 under its
    original name, and every consumer, the next island too, reads that fp16 copy (through a
    Cast back to fp32). So a LayerNorm's deviation would pass through fp16 between Sub and Pow.
    Here each Cast(to fp32) of a Cast(to fp16) of an fp32 tensor reads the fp32 tensor itself."""
    from onnx import TensorProto
    nodes = mixed.graph.node
    producer = dict((o, n) for n in nodes for o in n.output)
    fp32 = _fp32_tensors(mixed)
    outputs = set(o.name for o in mixed.graph.output)
    rename, dead = {}, set()
    for n in nodes:
        first = producer.get(n.input[0]) if n.op_type == "Cast" and n.input else None
        if _cast_to(n) == TensorProto.FLOAT and first is not None and n.output[0] not in outputs \
                and _cast_to(first) == TensorProto.FLOAT16 and first.input[0] in fp32:
            rename[n.output[0]] = first.input[0]
            dead.add(id(n))
    for n in nodes:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    kept = [n for n in nodes if id(n) not in dead]
    del nodes[:]
    nodes.extend(kept)
    return mixed


def _cast_to(node):
    if node.op_type != "Cast":
        return None
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _fp32_tensors(model):
    """Names of the float32 tensors of a model (inputs, initializers, inferred values)."""
    import onnx
    from onnx import TensorProto
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    typed = list(g.input) + list(g.value_info) + list(g.output)
    names = set(v.name for v in typed if v.type.tensor_type.elem_type == TensorProto.FLOAT)
    return names | set(i.name for i in g.initializer if i.data_type == TensorProto.FLOAT)


def island_casts(mixed):
    """How many Cast nodes the rewrite placed (fp32<->fp16 boundaries, inputs and outputs too)."""
    return sum(1 for n in mixed.graph.node if n.op_type == "Cast")
