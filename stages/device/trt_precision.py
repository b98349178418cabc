"""Precision in the engine link, per TensorRT generation (README "fp16 on each TensorRT
generation").

- typing(): the Recipe of engine.precision (stages/common/precisions.py): "fp32"; for fp16
  "strong" where the TensorRT has strong typing (the STRONGLY_TYPED network flag
  from 9.0/10.x, always on in 11.x and TensorRT-RTX, which have no BuilderFlag.FP16): the fp16
  engine is built from model.mixed.onnx, whose own types and Cast nodes say what runs in fp16, with
  no weak-typing call at all; "weak" on 8.0-8.6 (the Jetson Nano): model.onnx with FP16 plus
  OBEY_PRECISION_CONSTRAINTS (STRICT_TYPES on 8.0) and exactly the precision link's islands pinned.
- pin_islands(): pins by the islands' output tensor names, then walks up to the parser's helper
  layers: the ONNX parser splits a Softmax into an ISoftMaxLayer plus an IShuffleLayer that carries
  the ONNX output name, adds Constant/Shuffle helpers and renames duplicate layer names, so a
  name match alone can pin the Shuffle and leave the SoftMax in fp16.
- check_engine(): reads per-layer precisions back with the EngineInspector (8.2+, DETAILED
  profiling verbosity) and fails when a pinned layer ran in fp16 (NVIDIA/TensorRT #3889, #4505)."""
import json

from runtime.trt_types import short_name
from stages.common import precisions
from stages.common.errors import EngineError
from stages.common.precisions import HALF

HELPER_TENSOR = "(Unnamed Layer*"  # TensorRT's default name for a tensor no ONNX node named


def weak_typing(trt):
    """BuilderFlag.FP16 exists: 8.x-10.x. TensorRT 11 and TensorRT-RTX removed it."""
    return hasattr(trt.BuilderFlag, "FP16")


def strongly_typed(trt):
    """This TensorRT can build reduced precision from the network's own types (the
    STRONGLY_TYPED flag from 9.0/10.x), or can do nothing else (11.x, TensorRT-RTX)."""
    return hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") or not weak_typing(trt)


def typing(trt, precision):
    """The name of engine.precision's Recipe on this TensorRT (stages/common/precisions.py)."""
    return precisions.get(precision).recipe(strongly_typed(trt)).typing


def network_flags(trt, builder, mode):
    """EXPLICIT_BATCH while implicit batch exists (builder.max_batch_size, <= 8.6);
    STRONGLY_TYPED for a strong fp16 build where weak typing still exists (10.x); nothing on
    11.x, always strong."""
    kinds, flags = trt.NetworkDefinitionCreationFlag, 0
    if hasattr(builder, "max_batch_size") and hasattr(kinds, "EXPLICIT_BATCH"):
        flags |= 1 << int(kinds.EXPLICIT_BATCH)
    if precisions.recipe(mode).strongly_typed and weak_typing(trt):
        flags |= 1 << int(kinds.STRONGLY_TYPED)
    return flags


def set_weak_fp16(trt, config):
    """FP16 plus the flag that makes TensorRT obey the pins: OBEY_PRECISION_CONSTRAINTS (8.2+),
    STRICT_TYPES on 8.0; returns the flag's name for the build record."""
    config.set_flag(trt.BuilderFlag.FP16)
    name = "OBEY_PRECISION_CONSTRAINTS" if hasattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS") \
        else "STRICT_TYPES"
    config.set_flag(getattr(trt.BuilderFlag, name))
    return name


def _layers(network):
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    produced = {}
    for i, layer in enumerate(layers):
        for j in range(layer.num_outputs):
            produced[layer.get_output(j).name] = i
    return layers, produced


def _helpers_above(trt, layers, produced, index):
    """Producers of this layer's inputs that the parser made for the same node: unnamed tensors
    (SoftMax before its Shuffle, broadcast Shuffles) and Constant layers."""
    layer, found = layers[index], []
    for k in range(layer.num_inputs):
        tensor = layer.get_input(k)
        if tensor is None or tensor.name not in produced:
            continue
        p = produced[tensor.name]
        if tensor.name.startswith(HELPER_TENSOR) or layers[p].type == trt.LayerType.CONSTANT:
            found.append(p)
    return found


def _pin(trt, layer):
    """fp32 compute and fp32 outputs; only float outputs take an output type."""
    floats = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype == trt.float32]
    if len(floats) != layer.num_outputs:
        return False
    layer.precision = trt.float32
    for j in floats:
        layer.set_output_type(j, trt.float32)
    return True


def pin_islands(trt, network, islands):
    """Pin every layer that computes an island: the record for build.log and the sidecar."""
    layers, produced = _layers(network)
    pinned, unmatched = {}, []
    for island in islands:
        stack = [produced[t] for t in island["outputs"] if t in produced]
        if not stack:
            unmatched.append(island["node"])
        while stack:
            i = stack.pop()
            if i not in pinned:
                pinned[i] = island
                stack += _helpers_above(trt, layers, produced, i)
    names = [layers[i].name for i in sorted(pinned) if _pin(trt, layers[i])]
    by_op = {}
    for i in pinned:
        by_op[pinned[i]["op"]] = by_op.get(pinned[i]["op"], 0) + 1
    return {"islands": len(islands), "pinned_layers": names, "pinned_by_op": by_op,
            "unmatched_islands": unmatched,
            "island_tensors": sorted(set(t for isl in islands for t in isl["outputs"]))}


def islands_from_groups(groups, wanted):
    """Fallback before the precision link existed: the ONNX sidecar's precision_groups
    (engine.keep_fp32), one island per group."""
    unknown = [g for g in wanted if g not in groups]
    if unknown:
        raise EngineError("engine.keep_fp32 names %s, but the ONNX sidecar knows only %s: fix "
                          "pipeline.yaml."
                          % (", ".join(unknown), ", ".join(sorted(groups))))
    return [{"node": g, "op": g, "outputs": groups[g]["tensors"], "reason": "engine.keep_fp32"}
            for g in wanted]


def set_detailed_profiling(trt, config):
    """DETAILED verbosity keeps per-layer types in the plan for the inspector (8.2+)."""
    verbosity = getattr(trt, "ProfilingVerbosity", None)
    if verbosity is not None and hasattr(verbosity, "DETAILED"):
        config.profiling_verbosity = verbosity.DETAILED
        return True
    return False


def _tensor_precision(tensor):
    text = ((tensor.get("Format/Datatype") or tensor.get("Datatype") or "")
            if isinstance(tensor, dict) else "")
    for token, name in (("FP32", "fp32"), ("Float", "fp32"), ("FP16", "fp16"), ("Half", "fp16"),
                        ("BF16", "bf16"), ("FP8", "fp8"), ("Int32", "int32"), ("INT32", "int32"),
                        ("Int64", "int64"), ("INT64", "int64"), ("UInt8", "uint8"),
                        ("Int8", "int8"), ("INT8", "int8"), ("Bool", "bool"), ("BOOL", "bool")):
        if token in text:
            return name
    return "unknown"


def engine_layers(trt, runtime, plan):
    """[(engine layer name, [output names], [output precisions])] from the EngineInspector, or a
    string saying why there are none (8.0 has no inspector; TensorRT-RTX cannot deserialize on
    a GPU it does not support)."""
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except Exception as e:  # TensorRT-RTX raises on a GPU it does not support
        return "the engine could not be deserialized on this machine to inspect it (%s)" % e
    if engine is None:
        return "the engine could not be deserialized on this machine to inspect it"
    if not hasattr(engine, "create_engine_inspector"):
        return "TensorRT %s has no engine inspector (it arrived in 8.2)" % trt.__version__
    inspector = engine.create_engine_inspector()
    data = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    out = []
    for layer in data.get("Layers", []):
        if not isinstance(layer, dict):
            return "the plan holds layer names only (profiling verbosity below DETAILED)"
        outputs = layer.get("Outputs", [])
        out.append((layer.get("Name", ""), [t.get("Name") for t in outputs],
                    [_tensor_precision(t) for t in outputs]))
    return out


def summary(layers):
    """Engine layers per output precision, e.g. {"fp16": 412, "fp32": 120}."""
    counts = {}
    for _, _, precisions in layers:
        key = precisions[0] if precisions else "none"
        counts[key] = counts.get(key, 0) + 1
    return counts


def offenders(layers, pins):
    """Engine layers that hold a pinned layer (by fused name or island output) and output fp16."""
    names, tensors, bad = set(pins["pinned_layers"]), set(pins["island_tensors"]), []
    for name, outputs, layer_precisions in layers:
        if name.startswith("Reformatting CopyNode"):
            continue
        parts = set(p.strip() for p in name.split(" + "))
        if (parts & names or tensors.intersection(outputs)) and HALF in layer_precisions:
            bad.append(name)
    return bad


def check_engine(trt, runtime, plan, pins):
    """The inspector record; raises EngineError when a pinned layer ran in fp16."""
    layers = engine_layers(trt, runtime, plan)
    if not isinstance(layers, list):
        return {"available": False, "reason": layers}
    record = {"available": True, "layers": len(layers), "layers_per_precision": summary(layers)}
    bad = offenders(layers, pins) if pins else []
    if bad:
        raise EngineError("TensorRT %s ran layers pinned to fp32 in fp16 despite the precision "
                          "constraints: %s; the engine was not saved, so set engine.precision: "
                          "fp32 in pipeline.yaml (or try another TensorRT, see NVIDIA/TensorRT "
                          "#3889)." % (
                              trt.__version__, ", ".join(bad[:8]) + (" and %d more" % (len(bad) - 8)
                                                                     if len(bad) > 8 else "")))
    return record


def network_types(network):
    """{output tensor name: 'fp32'|'fp16'|...} of the parsed network (strongly typed: the
    graph's)."""
    layers, _ = _layers(network)
    return dict((layer.get_output(j).name, short_name(layer.get_output(j).dtype))
                for layer in layers for j in range(layer.num_outputs))
