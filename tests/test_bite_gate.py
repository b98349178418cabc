"""The TensorRT gate on crafted ONNX graphs: the opset range is inclusive at both ends, every
operator outside the target's parser table is named, and the hint fits the target."""

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from stages.common.errors import GateError  # noqa: E402
from stages.host import onnx_gate  # noqa: E402


def graph(ops, opset, extra_domain=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    nodes, last = [], "x"
    for i, op in enumerate(ops):
        nodes.append(helper.make_node(op, [last], ["t%d" % i], name="n%d" % i))
        last = "t%d" % i
    y = helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, 4])
    imports = [helper.make_opsetid("", opset)]
    if extra_domain:
        imports.append(helper.make_opsetid(extra_domain, 99))
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=imports)


@pytest.mark.parametrize("target", ["8.2", "10"])
def test_both_ends_of_the_opset_range_pass_and_one_past_either_fails(target):
    table = onnx_gate.load_table(target)
    lo, hi = table["opset_min"], table["opset_max"]
    for opset in (lo, hi):
        report = onnx_gate.check(graph(["Relu"], opset), target)
        assert report["opset"] == opset and report["opset_range"] == [lo, hi]
    for opset in (lo - 1, hi + 1):
        with pytest.raises(GateError) as e:
            onnx_gate.check(graph(["Relu"], opset), target)
        assert "opset %d is outside TensorRT %s's range %d-%d" % (opset, target, lo, hi) in str(
            e.value
        )


def test_the_graph_opset_ignores_other_domains():
    assert onnx_gate.graph_opset(graph(["Relu"], 13, extra_domain="com.microsoft")) == 13


def test_every_unsupported_operator_is_named_sorted_once():
    model = graph(["Relu", "NotAnOp", "Relu", "AlsoNotAnOp", "NotAnOp"], 13)
    with pytest.raises(GateError) as e:
        onnx_gate.check(model, "10")
    message = str(e.value)
    assert "operators AlsoNotAnOp, NotAnOp are not in TensorRT 10's ONNX parser" in message
    assert "lower onnx.opset in pipeline.yaml or raise onnx.target_tensorrt" in message
    assert "outside" not in message


def test_the_8_2_hint_names_opset_13():
    with pytest.raises(GateError) as e:
        onnx_gate.check(graph(["LayerNormalization"], 17), "8.2")
    message = str(e.value)
    assert "set onnx.opset: 13" in message and "opset 17 is outside" in message
    assert "LayerNormalization are not in TensorRT 8.2" in message


def test_layernorm_hint_on_a_newer_target_too():
    assert "LayerNormalization" not in onnx_gate.load_table("8.5")["supported"]
    with pytest.raises(GateError) as e:
        onnx_gate.check(graph(["LayerNormalization"], 17), "8.5")
    assert "set onnx.opset: 13" in str(e.value) and "outside" not in str(e.value)


def test_a_passing_report_lists_ops_and_their_restrictions():
    table = onnx_gate.load_table("8.2")
    restricted = sorted(table["restrictions"])[0]
    report = onnx_gate.check(graph(["Relu", restricted], 13), "8.2")
    assert report["ops"] == sorted(["Relu", restricted]) and report["unsupported_ops"] == []
    assert report["restrictions"] == {restricted: table["restrictions"][restricted]}
    assert report["target_tensorrt"] == "8.2" and report["table"] == table["source"]


def test_gate_messages_in_full():
    with pytest.raises(GateError) as e:
        onnx_gate.check(graph(["Relu", "NotAnOp"], 21), "10")
    assert str(e.value) == (
        "The ONNX graph fails the TensorRT 10 gate: opset 21 is outside TensorRT 10's range "
        "9-20; operators NotAnOp are not in TensorRT 10's ONNX parser; lower onnx.opset in "
        "pipeline.yaml or raise onnx.target_tensorrt."
    )
    with pytest.raises(GateError) as e:
        onnx_gate.check(graph(["NotAnOp"], 13), "8.2")
    assert str(e.value).endswith(
        "; set onnx.opset: 13 in pipeline.yaml (LayerNormalization appears only " "from opset 17)."
    )


def test_the_ai_onnx_domain_counts_as_the_default_domain():
    model = graph(["Relu"], 11)
    model.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    assert onnx_gate.graph_opset(model) == 13


def test_resize_modes_lists_each_resize_once_with_the_onnx_defaults():
    from stages.host.onnx_export import resize_modes

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    nodes = [
        helper.make_node(
            "Resize",
            ["x", "", "s"],
            ["a"],
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
            exclude_outside=0,
        ),
        helper.make_node("Resize", ["a", "", "s"], ["b"]),
        helper.make_node(
            "Resize",
            ["b", "", "s"],
            ["c"],
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
        ),
        helper.make_node("Relu", ["c"], ["y"], mode_unused="cubic"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]))
    assert resize_modes(model) == ["linear/pytorch_half_pixel", "nearest/half_pixel"]
