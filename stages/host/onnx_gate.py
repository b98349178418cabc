"""Gate an ONNX graph for a target TensorRT: opset range and every operator against that
version's onnx-tensorrt operator table (data files in stages/host/trt_ops/, each citing its
source)."""
import json
import os

from stages.common.errors import GateError

TABLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trt_ops")


def load_table(target):
    with open(os.path.join(TABLES, "tensorrt-%s.json" % target)) as f:
        return json.load(f)


LAYER_NORM_OPSET = 17  # ONNX LayerNormalization exists from opset 17


def parses_layer_norm(target):
    """Whether TensorRT `target`'s ONNX parser takes LayerNormalization (8.6 and later)."""
    table = load_table(target)
    return ("LayerNormalization" in table["supported"]
            and table["opset_max"] >= LAYER_NORM_OPSET)


def export_opset(onnx_cfg):
    """The opset to export at: onnx.opset, raised to 17 (LayerNormalization as one node) when
    onnx.layer_norm is auto or native and onnx.target_tensorrt parses it (issue 22)."""
    opset, mode, target = onnx_cfg["opset"], onnx_cfg["layer_norm"], onnx_cfg["target_tensorrt"]
    if mode == "decomposed" or opset >= LAYER_NORM_OPSET:
        return opset
    if parses_layer_norm(target):
        return LAYER_NORM_OPSET
    if mode == "native":
        raise GateError("onnx.layer_norm is native, but TensorRT %s's ONNX parser has no "
                        "LayerNormalization (it needs TensorRT 8.6 or later): set "
                        "onnx.layer_norm: auto or decomposed in pipeline.yaml." % target)
    return opset


def graph_opset(model):
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def check(model, target):
    """Return the gate's report for `model` (an onnx.ModelProto); raise GateError if it fails."""
    table = load_table(target)
    opset = graph_opset(model)
    ops = sorted(set(n.op_type for n in model.graph.node))
    supported = set(table["supported"])
    bad = [op for op in ops if op not in supported]
    report = {"target_tensorrt": target, "opset": opset, "ops": ops, "table": table["source"],
              "opset_range": [table["opset_min"], table["opset_max"]], "unsupported_ops": bad,
              "restrictions": dict((op, table["restrictions"][op]) for op in ops
                                   if op in table["restrictions"])}
    problems = []
    if not table["opset_min"] <= opset <= table["opset_max"]:
        problems.append("opset %d is outside TensorRT %s's range %d-%d" % (
            opset, target, table["opset_min"], table["opset_max"]))
    if bad:
        problems.append("operators %s are not in TensorRT %s's ONNX parser" % (
            ", ".join(bad), target))
    if problems:
        hint = ("set onnx.opset: 13 in pipeline.yaml (LayerNormalization appears only from opset "
                "17)"
                if target == "8.2" or "LayerNormalization" in bad else
                "lower onnx.opset in pipeline.yaml or raise onnx.target_tensorrt")
        raise GateError("The ONNX graph fails the TensorRT %s gate: %s; %s." % (
            target, "; ".join(problems), hint))
    return report
