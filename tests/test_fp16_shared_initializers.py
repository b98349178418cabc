"""An initializer read by an fp16 node and by an fp32 island (onnx-simplifier merges equal ones,
such as a random checkout's zero biases) gets one copy per precision in model.mixed.onnx, so every
node reads weights of its own type (TensorRT-RTX refused a Conv whose input was fp16 and whose bias
was fp32 in the B4 LayerNormalization export before)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.host


def _conv_then_layernorm():
    zeros = numpy_helper.from_array(np.zeros(4, np.float32), "zeros")  # shared bias
    ones = numpy_helper.from_array(np.ones(4, np.float32), "ones")
    w = numpy_helper.from_array(np.random.RandomState(0).randn(4, 3, 1, 1).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w", "zeros"], ["c"], name="conv"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1], name="nhwc"),
        helper.make_node("LayerNormalization", ["t", "ones", "zeros"], ["y"], axis=-1, name="ln"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 4])], [zeros, ones, w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _types(model):
    inits = dict((t.name, t.data_type) for t in model.graph.initializer)
    return dict((n.name, [inits.get(i) for i in n.input]) for n in model.graph.node
                if n.name in ("conv", "ln"))


def test_each_node_reads_initializers_of_its_own_precision():
    from stages.host.fp16_convert import to_mixed
    mixed = to_mixed(_conv_then_layernorm(), {"ln"})
    onnx.checker.check_model(mixed, full_check=True)
    types = _types(mixed)
    assert types["conv"][1:] == [TensorProto.FLOAT16, TensorProto.FLOAT16], types
    assert types["ln"][1:] == [TensorProto.FLOAT, TensorProto.FLOAT], types


def test_the_mixed_model_runs_and_keeps_the_fp32_result():
    import onnxruntime as ort
    from stages.host.fp16_convert import to_mixed
    model = _conv_then_layernorm()
    x = np.random.RandomState(1).randn(1, 3, 2, 2).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=[
        "CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run(to_mixed(model, {"ln"})), run(model), atol=5e-3)


def test_an_initializer_only_islands_read_is_not_copied():
    from stages.host.fp16_convert import unshare_initializers
    model = _conv_then_layernorm()
    unshare_initializers(model, {"conv", "ln"})
    assert sorted(t.name for t in model.graph.initializer) == ["ones", "w", "zeros"]
