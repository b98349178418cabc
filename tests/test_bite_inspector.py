"""stages/device/trt_precision.py, function by function and fast (no build): the typing and the
network flags of each TensorRT generation, the weak-typing flags, the pins an island takes (the
parser's helper layers above it and nothing upstream), the keep_fp32 fallback islands, and the
inspector read-back (each spelling of a precision, the layers counted, the offenders).

The TensorRT here is the test double (tests/doubles: NOT TensorRT): its enums, its builder config
and its network and layer classes, the surface of each release; layers are put together by hand
as the ONNX parser lays them out, and the inspector's JSON is written by hand."""

import pytest

from conftest import use_trt_doubles

GENERATIONS = ["8.0", "8.2", "8.6", "10", "11"]


@pytest.fixture(params=GENERATIONS)
def trt(request, monkeypatch):
    return use_trt_doubles(monkeypatch, request, request.param)


@pytest.fixture(params=["8.0", "8.2", "8.6"])
def weak_trt(request, monkeypatch):
    """The generations that pin islands (weak typing: layer precisions exist)."""
    return use_trt_doubles(monkeypatch, request, request.param)


def weak_generation(trt):
    return trt.__version__.startswith("8.")


def test_each_generation_builds_fp16_weakly_or_strongly_and_fp32_as_fp32(trt):
    from stages.device import trt_precision as tp
    eight, eleven = weak_generation(trt), trt.__version__.startswith("11")
    assert tp.weak_typing(trt) is not eleven
    assert tp.strongly_typed(trt) is not eight
    assert tp.typing(trt, "fp16") == ("weak" if eight else "strong")
    assert tp.typing(trt, "fp32") == "fp32"


def builder(trt):
    return trt.Builder(trt.Logger(trt.Logger.WARNING))


def test_network_flags_of_each_generation(trt):
    from stages.device import trt_precision as tp
    kinds, b = trt.NetworkDefinitionCreationFlag, builder(trt)
    explicit = 1 << int(kinds.EXPLICIT_BATCH) if weak_generation(trt) else 0
    assert tp.network_flags(trt, b, "fp32") == explicit
    assert tp.network_flags(trt, b, "weak") == explicit
    if trt.__version__.startswith("10"):  # STRONGLY_TYPED is asked for; no implicit batch left
        assert tp.network_flags(trt, b, "strong") == 1 << int(kinds.STRONGLY_TYPED)
    elif trt.__version__.startswith("11"):  # always strong: no flag at all
        assert tp.network_flags(trt, b, "strong") == 0


def test_tensorrt_9_asks_for_explicit_batch_and_strong_typing_together():
    """9.x (not in the double): implicit batch still exists beside STRONGLY_TYPED."""
    from types import SimpleNamespace as Module
    from stages.device import trt_precision as tp
    trt = Module(NetworkDefinitionCreationFlag=Module(EXPLICIT_BATCH=0, STRONGLY_TYPED=1),
                 BuilderFlag=Module(FP16=0))
    assert tp.typing(trt, "fp16") == "strong"
    assert tp.network_flags(trt, Module(max_batch_size=1), "strong") == 0b11


def test_weak_fp16_sets_fp16_and_the_flag_that_makes_tensorrt_obey_the_pins(trt):
    from stages.device import trt_precision as tp
    if not hasattr(trt.BuilderFlag, "FP16"):
        return
    config = builder(trt).create_builder_config()
    name = tp.set_weak_fp16(trt, config)
    flags = trt.BuilderFlag
    assert name == ("STRICT_TYPES" if trt.__version__.startswith("8.0") else
                    "OBEY_PRECISION_CONSTRAINTS")
    assert config.get_flag(flags.FP16) and config.get_flag(getattr(flags, name))
    if name == "OBEY_PRECISION_CONSTRAINTS":
        assert not config.get_flag(flags.PREFER_PRECISION_CONSTRAINTS)


def test_detailed_profiling_where_the_generation_has_it(trt):
    from stages.device import trt_precision as tp
    config = builder(trt).create_builder_config()
    before = config.profiling_verbosity
    if trt.__version__.startswith("8.0"):  # no DETAILED (and no inspector) before 8.2
        assert tp.set_detailed_profiling(trt, config) is False
        assert config.profiling_verbosity == before
        return
    assert tp.set_detailed_profiling(trt, config) is True
    assert config.profiling_verbosity == trt.ProfilingVerbosity.DETAILED


def test_no_detailed_profiling_on_a_tensorrt_without_profiling_verbosity():
    from types import SimpleNamespace as Module
    from stages.device import trt_precision as tp
    config = Module()
    assert tp.set_detailed_profiling(Module(), config) is False and vars(config) == {}


# --- pins: a network laid out as the ONNX parser does, by hand ----------------------------------

def network(trt, spec):
    """spec: [(layer name, LayerType name, [input tensor names or None], [(output, dtype)])];
    a tensor no layer outputs is a network input."""
    from tensorrt._network import ILayer, INetworkDefinition, ITensor
    tensors, layers = {}, []
    for name, kind, inputs, outputs in spec:
        ins = [None if t is None else tensors.setdefault(t, ITensor(t, (1, 4), trt.float32))
               for t in inputs]
        outs = [tensors.setdefault(t, ITensor(t, (1, 4), dtype)) for t, dtype in outputs]
        layers.append(ILayer(name, getattr(trt.LayerType, kind), ins, outs))
    net = INetworkDefinition(0, False, False)
    net._load(b"", layers, [], [])
    return net, dict((layer.name, layer) for layer in layers)


SOFTMAX = "(Unnamed Layer* 2) [Softmax]"
CONST = "(Unnamed Layer* 3) [Constant]"
BROADCAST = "(Unnamed Layer* 4) [Shuffle]"


def segformer_tail(trt):
    """relu -> conv (weights: a named Constant) -> mul by an unnamed, broadcast constant ->
    SoftMax + its Shuffle 'soft' -> logits; shape_of -> an int32 shape; split -> a float and an
    int output; shift adds a constant bias to the network input."""
    f, i32 = trt.float32, trt.int32
    return network(trt, [
        ("relu", "ACTIVATION", ["pixel_values"], [("r", f)]),
        ("weights", "CONSTANT", [], [("w", f)]),
        (SOFTMAX, "SOFTMAX", ["m"], [(SOFTMAX + "_output", f)]),
        (CONST, "CONSTANT", [], [(CONST + "_output", f)]),
        (BROADCAST, "SHUFFLE", [CONST + "_output"], [(BROADCAST + "_output", f)]),
        ("conv", "CONVOLUTION", ["r", "w", None], [("c", f)]),
        ("mul", "ELEMENTWISE", ["c", BROADCAST + "_output"], [("m", f)]),
        ("soft", "SHUFFLE", [SOFTMAX + "_output"], [("logits", f)]),
        ("shape_of", "SHAPE", ["m"], [("shape", i32)]),
        ("split", "SLICE", ["logits"], [("half", f), ("index", i32)]),
        ("bias", "CONSTANT", [], [("b", f)]),
        ("shift", "ELEMENTWISE", ["pixel_values", "b"], [("s", f)]),
    ])


def island(node, op, *outputs):
    return {"node": node, "op": op, "outputs": list(outputs)}


def pinned(layers):
    return sorted(n for n, layer in layers.items() if layer.precision_is_set)


def test_a_softmax_island_pins_the_softmax_above_its_shuffle_and_nothing_upstream(weak_trt):
    trt = weak_trt
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("soft", "Softmax", "logits")])
    assert record["pinned_layers"] == [SOFTMAX, "soft"]  # in network order
    assert pinned(layers) == sorted([SOFTMAX, "soft"])  # not mul, which computes its input
    for name in (SOFTMAX, "soft"):
        assert layers[name].precision == trt.float32
        assert layers[name].output_type_is_set(0) and layers[name].get_output_type(0) == trt.float32
    assert record["pinned_by_op"] == {"Softmax": 2} and record["unmatched_islands"] == []
    assert record["islands"] == 1 and record["island_tensors"] == ["logits"]


def test_constants_and_unnamed_helpers_above_an_island_are_pinned_named_producers_are_not(weak_trt):
    trt = weak_trt
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("mul", "Mul", "m"), island("conv", "Conv", "c")])
    # mul: its broadcast Shuffle and that Shuffle's Constant; conv: its weights (a Constant with
    # a named output) and not relu above it, nor conv's missing optional input (None)
    assert record["pinned_layers"] == ["weights", CONST, BROADCAST, "conv", "mul"]
    assert pinned(layers) == sorted(record["pinned_layers"])
    assert record["pinned_by_op"] == {"Mul": 3, "Conv": 2}


def test_an_island_with_several_outputs_pins_every_layer_that_computes_one(weak_trt):
    from stages.device import trt_precision as tp
    trt = weak_trt
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("attn", "Attention", "logits", "r")])
    assert record["pinned_layers"] == ["relu", SOFTMAX, "soft"]


def test_a_constant_after_a_network_input_is_still_pinned(weak_trt):
    from stages.device import trt_precision as tp
    trt = weak_trt
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("shift", "Add", "s")])
    assert record["pinned_layers"] == ["bias", "shift"]


def test_a_layer_two_islands_share_is_counted_once_for_the_first(weak_trt):
    trt = weak_trt
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("soft", "Softmax", "logits"),
                                       island("again", "Exp", "logits", "r")])
    assert record["pinned_layers"] == ["relu", SOFTMAX, "soft"]
    assert record["pinned_by_op"] == {"Softmax": 2, "Exp": 1}
    assert record["islands"] == 2 and record["island_tensors"] == ["logits", "r"]


def test_layers_with_an_integer_output_are_counted_but_not_pinned(weak_trt):
    trt = weak_trt
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("shape_of", "Shape", "shape"),
                                       island("split", "Split", "half")])
    assert record["pinned_layers"] == [] and pinned(layers) == []
    assert record["pinned_by_op"] == {"Shape": 1, "Split": 1}
    assert not any(layers[n].output_type_is_set(j) for n in ("shape_of", "split") for j in (0, 1))


def test_an_island_no_layer_outputs_is_unmatched_one_with_any_output_is_not(weak_trt):
    trt = weak_trt
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    record = tp.pin_islands(trt, net, [island("gone", "Softmax", "nowhere"),
                                       island("mixed", "Relu", "elsewhere", "r"),
                                       island("input", "Identity", "pixel_values")])
    assert record["unmatched_islands"] == ["gone", "input"]
    assert record["pinned_layers"] == ["relu"] and record["pinned_by_op"] == {"Relu": 1}
    assert record["island_tensors"] == ["elsewhere", "nowhere", "pixel_values", "r"]


def test_no_islands_pin_nothing(weak_trt):
    trt = weak_trt
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    assert tp.pin_islands(trt, net, []) == {"islands": 0, "pinned_layers": [], "pinned_by_op": {},
                                             "unmatched_islands": [], "island_tensors": []}
    assert pinned(layers) == []


def test_network_types_name_every_output_of_every_layer(trt):
    from stages.device import trt_precision as tp
    net, layers = segformer_tail(trt)
    types = tp.network_types(net)
    assert len(types) == 13 and types["logits"] == "fp32" and types["index"] == "int32"
    assert types[SOFTMAX + "_output"] == "fp32" and types["half"] == "fp32"


def test_the_keep_fp32_fallback_is_one_island_per_group_in_the_order_asked():
    from stages.common.errors import PipelineError
    from stages.device import trt_precision as tp
    groups = {"softmax": {"tensors": ["a", "b"]}, "layernorm": {"tensors": ["n"]}}
    assert tp.islands_from_groups(groups, ["layernorm", "softmax"]) == [
        {"node": "layernorm", "op": "layernorm", "outputs": ["n"], "reason": "engine.keep_fp32"},
        {"node": "softmax", "op": "softmax", "outputs": ["a", "b"], "reason": "engine.keep_fp32"}]
    assert tp.islands_from_groups(groups, []) == []
    with pytest.raises(PipelineError) as e:
        tp.islands_from_groups(groups, ["softmax", "gelu", "attention"])
    assert "engine.keep_fp32 names gelu, attention, but the ONNX sidecar knows only layernorm, " \
           "softmax: fix pipeline.yaml." in str(e.value)
