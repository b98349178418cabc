"""Which ONNX nodes an fp16 engine must keep in fp32 (SegFormer: LayerNorm chains, Softmax).

Found on the host, from the graph's structure, and stored in the ONNX sidecar (model.json), so
the device needs no `onnx` package: the engine builder pins the TensorRT layers whose name or
output tensor matches. mmdeploy #2477 and TensorRT #2781 show fp16 SegFormer engines going
wrong without this."""
from collections import defaultdict


def _index(graph):
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    return consumers


def _one(consumers, tensor, op, check=None):
    for node in consumers.get(tensor, []):
        if node.op_type == op and (check is None or check(node)):
            return node
    return None


def layernorm_chains(graph):
    """Each decomposed LayerNorm: ReduceMean -> Sub -> Pow -> ReduceMean -> Add -> Sqrt -> Div."""
    consumers, chains = _index(graph), []
    for mean in graph.node:
        if mean.op_type != "ReduceMean":
            continue
        x = mean.input[0]
        sub = _one(consumers, mean.output[0], "Sub", lambda n: n.input[0] == x)
        pow_ = sub and _one(consumers, sub.output[0], "Pow")
        var = pow_ and _one(consumers, pow_.output[0], "ReduceMean")
        add = var and _one(consumers, var.output[0], "Add")
        sqrt = add and _one(consumers, add.output[0], "Sqrt")
        div = sqrt and _one(consumers, sqrt.output[0], "Div", lambda n: n.input[0] == sub.output[0])
        if div:
            chains.append([mean, sub, pow_, var, add, sqrt, div])
    return chains


def precision_groups(model):
    """{"LayerNorm": {...}, "Softmax": {...}}: node names and output tensors of each group."""
    def group(nodes):
        return {"nodes": sorted(n.name for n in nodes if n.name),
                "tensors": sorted(t for n in nodes for t in n.output), "count": len(nodes)}
    chains = layernorm_chains(model.graph)
    native = [n for n in model.graph.node if n.op_type == "LayerNormalization"]  # opset >= 17
    return {"LayerNorm": dict(group([n for c in chains for n in c] + native),
                              chains=len(chains) + len(native)),
            "Softmax": group([n for n in model.graph.node if n.op_type == "Softmax"])}
