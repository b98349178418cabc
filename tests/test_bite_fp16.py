"""The fp16 rewrite and its emulation, in this process on small hand-built ONNX graphs (fast, for
the mutation run, issue 25): what the converter keeps in fp32, the emulation of a typed model
against numpy float16 arithmetic, and the switchboard against that emulation, bit for bit, on
graphs with what the first tests lacked (a tensor read by two switchable nodes, integer
tensors, an opset-13 attribute, an initializer below -65504, a LayerNorm and GELU chain)."""
from itertools import combinations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from test_bite_precision import _io, _model  # noqa: E402

F32, F16, I64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64


def _init(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def _node(op, inputs, output, name, **attrs):
    return helper.make_node(op, inputs, [output], name=name, **attrs)


def _h(a):
    """numpy's float16 rounding of float32 values, back in float32 (the storage rule)."""
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def _emulated(model, islands, x, output="logits"):
    from stages.host import fp16_convert, fp16_emulate
    typed = fp16_convert.to_mixed(model, set(islands))
    sess = fp16_emulate.session(fp16_emulate.emulate_fp16_storage(typed))
    return sess.run([output], {"pixel_values": x})[0]


# --- the emulation against numpy float16 -----------------------------------------------------

def _typed_model():
    """pixel_values [1, 10, 1, 2] -> dw (a depthwise 1x1 Conv, group 10) -> mul (x an fp32
    Constant, fp16 in the mixed model) -> trunc (Cast to int64) -> back (Cast to float) -> add
    (+ the Constant) -> flat (Reshape to a Constant int64 shape) -> logits."""
    w = _init("w", (0.1 * np.arange(10) + 0.05).reshape(10, 1, 1, 1))
    k = helper.make_tensor("k", F32, [1, 10, 1, 1], list(np.arange(10) / 3.0 + 1.0))
    shape = helper.make_tensor("shape", I64, [2], [1, 20])
    nodes = [_node("Conv", ["pixel_values", "w"], "a", "dw", group=10),
             _node("Constant", [], "kk", "k", value=k),
             _node("Mul", ["a", "kk"], "b", "mul"),
             _node("Cast", ["b"], "bi", "trunc", to=I64),
             _node("Cast", ["bi"], "bf", "back", to=F32),
             _node("Add", ["bf", "kk"], "s", "add"),
             _node("Constant", [], "sh", "shape", value=shape),
             _node("Reshape", ["s", "sh"], "logits", "flat")]
    return _model(nodes, [_io("pixel_values", [1, 10, 1, 2])], [_io("logits", [1, 20])], [w],
                  opset=13)


def test_the_emulation_equals_numpy_float16_with_constants_integer_casts_and_a_group_conv():
    x = (np.arange(20, dtype=np.float32).reshape(1, 10, 1, 2) * 7.3 + 0.7).astype(np.float32)
    w = _h(0.1 * np.arange(10, dtype=np.float32) + 0.05).reshape(1, 10, 1, 1)
    k = _h((np.arange(10) / 3.0 + 1.0).astype(np.float32)).reshape(1, 10, 1, 1)
    a = _h(_h(x) * w)
    b = _h(a * k)
    s = _h(np.trunc(b) + k)  # the Cast to int64 truncates: 3.9 -> 3
    got = _emulated(_typed_model(), [], x)
    assert np.array_equal(got, s.reshape(1, 20))
    assert not np.array_equal(got, _h(b + k).reshape(1, 20))  # the truncation shows


def test_an_fp16_graph_input_is_refused_naming_it():
    from stages.host.fp16_emulate import emulate_fp16_storage
    model = _model([_node("Relu", ["x"], "y", "relu")], [_io("x", [2], F16)], [_io("y", [2], F16)])
    with pytest.raises(ValueError, match="graph input/output x is fp16: convert with keep_io"):
        emulate_fp16_storage(model)


def test_a_stale_declared_shape_does_not_stop_the_type_table():
    """A value_info whose shape disagrees with inference (strict inference raises on it)."""
    from stages.host.fp16_emulate import tensor_types
    graph = helper.make_graph([_node("Relu", ["x"], "r", "relu"), _node("Neg", ["r"], "y", "neg")],
                              "g", [_io("x", [1, 4])], [_io("y", [1, 4])],
                              value_info=[_io("r", [1, 3], F16)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert tensor_types(model) == {"x": F32, "r": F16, "y": F32}


# --- the converter: no op kept in fp32 by its type, no second conversion ---------------------

def _resize_max_model():
    roi = _init("roi", [])
    scales = _init("scales", [1.0, 1.0, 2.0, 2.0])
    nodes = [_node("Resize", ["pixel_values", "roi", "scales"], "r", "resize", mode="nearest"),
             _node("Max", ["r", "r"], "logits", "max")]
    return _model(nodes, [_io("pixel_values", [1, 1, 2, 2])], [_io("logits", [1, 1, 4, 4])],
                  [roi, scales], opset=13)


def test_the_converter_keeps_no_op_in_fp32_by_its_type():
    """onnxconverter-common's default block list keeps Resize, Max... in fp32; here only the
    islands are fp32."""
    from stages.host.fp16_convert import to_mixed
    from stages.host.fp16_emulate import tensor_types
    mixed = to_mixed(_resize_max_model(), set())
    types = tensor_types(mixed)
    by_name = dict((n.name, n) for n in mixed.graph.node)
    assert types[by_name["resize"].input[0]] == F16 and types[by_name["resize"].output[0]] == F16
    assert [types[t] for t in by_name["max"].input] == [F16, F16]
    island = to_mixed(_resize_max_model(), {"max"})
    assert tensor_types(island)[dict((n.name, n) for n in island.graph.node)["max"].input[0]] \
        == F32


def test_a_mixed_model_is_not_converted_again():
    from stages.host.fp16_convert import to_mixed
    mixed = to_mixed(_resize_max_model(), set())
    with pytest.raises(ValueError, match="already converted to float16"):
        to_mixed(mixed, set())


def test_the_tool_record_names_the_converter_and_its_version():
    import onnxconverter_common
    from stages.host.fp16_convert import tool
    assert tool() == {"name": "onnxconverter-common (float16.convert_float_to_float16)",
                      "version": onnxconverter_common.__version__}


def test_island_casts_counts_every_cast_the_rewrite_placed():
    from stages.host.fp16_convert import island_casts, to_mixed
    from test_bite_precision import _island_model
    # pixel_values -> Cast fp16 -> square -> relu -> soft -> Cast fp32 -> logits: 2 Casts; an
    # island adds a Cast at each fp16 boundary (the converter leaves its input Cast, unread)
    assert island_casts(to_mixed(_island_model(), set())) == 2
    assert island_casts(to_mixed(_island_model(), {"square"})) == 3
    assert island_casts(to_mixed(_island_model(), {"square", "relu"})) == 3
    assert island_casts(to_mixed(_island_model(), {"relu"})) == 4


# --- join_islands and fp32_outputs on hand-made typed graphs ---------------------------------

def test_join_islands_reads_an_fp32_initializer_itself_and_never_an_fp16_one():
    from stages.host.fp16_convert import join_islands

    def joined(dtype):
        w = _init("w", [1.5, 2.5], dtype)
        nodes = [_node("Cast", ["w"], "w16", "down", to=F16),
                 _node("Cast", ["w16"], "w32", "up", to=F32),
                 _node("Add", ["x", "w32"], "y", "add")]
        out = join_islands(_model(nodes, [_io("x", [2])], [_io("y", [2])], [w], opset=13))
        return dict((n.name, list(n.input)) for n in out.graph.node)
    assert joined(np.float32) == {"down": ["w"], "add": ["x", "w"]}
    assert joined(np.float16) == {"down": ["w"], "up": ["w16"], "add": ["x", "w32"]}


def test_fp32_outputs_changes_only_an_fp16_output_that_a_cast_makes():
    from stages.host.fp16_convert import fp32_outputs
    nodes = [_node("Cast", ["x"], "x16", "down", to=F16),
             _node("Relu", ["x16"], "r16", "relu"),  # an fp16 output made by an fp16 op
             _node("Cast", ["x16"], "c16", "up", to=F16)]
    outputs = [_io("r16", [2], F16), _io("c16", [2], F16), _io("x", [2])]  # x: a pass-through
    mixed = fp32_outputs(_model(nodes, [_io("x", [2])], outputs, opset=13))
    assert [o.type.tensor_type.elem_type for o in mixed.graph.output] == [F16, F32, F32]
    assert [a.i for a in mixed.graph.node[2].attribute] == [F32]
    assert [a.i for a in mixed.graph.node[0].attribute] == [F16]


# --- the switchboard against the emulation of the mixed model, bit for bit -------------------

def _fan_out_model():
    """pixel_values -> src (x * w) -> a, read by two switchable nodes: c1 (a * w: w is read by
    two nodes too) and c2 (a * k). c1 -> p -> Shape/Reshape (int64 in between) -> mean
    (ReduceMean, opset 13's axes attribute) -> dev (p - mean) -> big (x neg: -70000, beyond
    fp16, clamped for an fp16 node) -> u; out: q + u -> logits."""
    inits = [_init("w", [1.1, 0.37, 3.0001, -0.8]), _init("k", [1.0001, 2.0, 0.333, 5.0]),
             _init("neg", [-70000.0, 0.5, 3.0, 1e-3])]
    nodes = [_node("Mul", ["pixel_values", "w"], "a", "src"),
             _node("Mul", ["a", "w"], "p", "c1"), _node("Mul", ["a", "k"], "q", "c2"),
             _node("Shape", ["p"], "s", "shape"), _node("Reshape", ["p", "s"], "p2", "reshape"),
             _node("ReduceMean", ["p2"], "v", "mean", axes=[1], keepdims=1),
             _node("Sub", ["p2", "v"], "d", "dev"), _node("Mul", ["d", "neg"], "u", "big"),
             _node("Add", ["q", "u"], "logits", "out")]
    return _model(nodes, [_io("pixel_values", [1, 4])], [_io("logits", [1, 4])], inits,
                  opset=13)


def _every_island_set_agrees(model, switchable, x):
    from stages.host.fp16_switchboard import Board
    board = Board(model, switchable)
    out = {}
    for n in range(len(switchable) + 1):
        for kept in combinations(switchable, n):
            got = board.run(kept, {"pixel_values": x})
            assert np.array_equal(got, _emulated(model, kept, x), equal_nan=True), kept
            out[frozenset(kept)] = got
    return out


def test_the_switchboard_equals_the_emulation_where_two_switchable_nodes_read_one_tensor():
    from stages.host.fp16_switchboard import build
    model = _fan_out_model()
    model.ir_version = 8  # an onnx newer than onnxruntime would write an IR it cannot load
    switchable = ("src", "c1", "c2", "out")
    board_model = build(model, switchable)
    onnx.checker.check_model(board_model, full_check=True)
    assert board_model.ir_version == 8 and board_model.opset_import == model.opset_import
    x = np.array([[0.3, -0.7, 1.0 / 3, 0.9]], np.float32)
    got = _every_island_set_agrees(model, switchable, x)
    naive = got[frozenset()][0]
    assert np.isfinite(naive).all() and naive[0] > 10000  # -70000 read as -65504, not -inf
    # c2 reads src's fp32 a when both are islands, whatever c1 (a's other reader) is
    assert not np.array_equal(got[frozenset({"src", "c2", "out"})], got[frozenset({"c2", "out"})])


def _layernorm_gelu_model(c=8):
    """A decomposed LayerNorm then an erf GELU over the last axis (as older exports have them)."""
    inits = [_init("two", 2.0), _init("eps", 1e-5), _init("g", np.linspace(0.5, 1.5, c)),
             _init("b", np.linspace(-1, 1, c)), _init("sq2", 1.4142135), _init("one", 1.0),
             _init("half", 0.5)]
    chain = [("ReduceMean", ["pixel_values"], "m", {"axes": [-1]}),
             ("Sub", ["pixel_values", "m"], "d", {}), ("Pow", ["d", "two"], "p", {}),
             ("ReduceMean", ["p"], "v", {"axes": [-1]}), ("Add", ["v", "eps"], "ve", {}),
             ("Sqrt", ["ve"], "s", {}), ("Div", ["d", "s"], "n", {}),
             ("Mul", ["n", "g"], "ng", {}), ("Add", ["ng", "b"], "h", {}),
             ("Div", ["h", "sq2"], "h2", {}), ("Erf", ["h2"], "er", {}),
             ("Add", ["er", "one"], "e1", {}), ("Mul", ["h", "e1"], "hm", {}),
             ("Mul", ["hm", "half"], "logits", {})]
    nodes = [_node(op, i, o, "n%d" % k, **kw) for k, (op, i, o, kw) in enumerate(chain)]
    return _model(nodes, [_io("pixel_values", [1, 16, c])], [_io("logits", [1, 16, c])], inits,
                  opset=13)


def test_the_switchboard_equals_the_emulation_with_a_layernorm_and_gelu_chain_kept_fp32():
    """ONNX Runtime's graph optimizations would fuse the chain (not TensorRT's kernels, and not
    what the switchboard, whose Where nodes break the pattern, computes)."""
    from stages.host.fp16_switchboard import Board
    model = _layernorm_gelu_model()
    x = (np.random.default_rng(0).standard_normal((1, 16, 8)) * 37 + 5).astype(np.float32)
    names = [n.name for n in model.graph.node]
    board = Board(model, names)
    for kept in (names, []):
        assert np.array_equal(board.run(kept, {"pixel_values": x}), _emulated(model, kept, x))


def test_with_every_node_kept_fp32_the_switchboard_is_the_fp32_model_another_domain_too():
    """ONNX Runtime's contrib Gelu (domain com.microsoft) between two standard nodes."""
    from stages.host.fp16_emulate import session
    from stages.host.fp16_switchboard import Board
    nodes = [_node("Mul", ["pixel_values", "pixel_values"], "a", "sq"),
             _node("Gelu", ["a"], "g", "gelu", domain="com.microsoft"),
             _node("Add", ["g", "a"], "logits", "add")]
    graph = helper.make_graph(nodes, "g", [_io("pixel_values", [1, 4])], [_io("logits", [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              ir_version=8)
    x = np.array([[0.3, -1.7, 2.2, 1.0 / 3]], np.float32)
    fp32 = session(model).run(["logits"], {"pixel_values": x})[0]
    board = Board(model, ["sq", "gelu", "add"])
    assert np.array_equal(board.run(["sq", "gelu", "add"], {"pixel_values": x}), fp32)
    assert not np.array_equal(board.run([], {"pixel_values": x}), fp32)


def test_an_emulation_session_gives_a_runs_memory_back():
    """The precision budget reads the resident memory between steps: a 100 MB intermediate must
    not stay held by ONNX Runtime's arena after the run."""
    from stages.host.fp16_emulate import session
    from stages.host.precision_budget import rss_mb
    shape = helper.make_tensor("shape", I64, [1], [25000000])
    nodes = [_node("Expand", ["x", "shape"], "big", "expand"),
             _node("ReduceMax", ["big"], "y", "max", keepdims=0)]
    graph = helper.make_graph(nodes, "g", [_io("x", [1])], [_io("y", [])], [shape])
    sess = session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                     ir_version=8))
    before = rss_mb()
    assert sess.run(["y"], {"x": np.array([2.5], np.float32)})[0] == 2.5
    assert rss_mb() - before < 50


def test_an_emulation_session_starts_with_no_warning_and_no_provider_error(capfd):
    """An unknown provider name makes ONNX Runtime warn, print an "EP Error" banner into the
    link's output and fall back to the CPU."""
    import warnings
    from stages.host.fp16_emulate import session
    model = _model([_node("Relu", ["x"], "y", "relu")], [_io("x", [2])], [_io("y", [2])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sess = session(model)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert "EP Error" not in "".join(capfd.readouterr())
