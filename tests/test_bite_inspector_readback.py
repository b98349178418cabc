"""stages/device/trt_precision.py's inspector read-back, fast and without a build: each
TensorRT generation's spelling of a tensor's precision, what the EngineInspector's JSON gives
(or why there is none), the layers per precision, and which engine layers count as a pinned
layer that ran in fp16.

The engine and its inspector are written by hand here (the JSON as TensorRT 8.2-10.x prints it
with DETAILED verbosity); the `trt` module is the test double (tests/doubles: NOT TensorRT)."""
import json

import pytest

from conftest import use_trt_doubles


@pytest.fixture
def trt(request, monkeypatch):
    return use_trt_doubles(monkeypatch, request, "8.2")


# "Format/Datatype" (8.x, 10.x) or "Datatype" (later), and each word TensorRT uses for a type
SPELLINGS = [
    ("Row major linear FP32", "fp32"), ("Float", "fp32"),
    ("Row major linear FP16 format", "fp16"), ("Half", "fp16"),
    ("Two wide channel vectorized row major FP16 format", "fp16"),
    ("BF16", "bf16"), ("Row major linear BF16", "bf16"), ("FP8", "fp8"),
    ("Int32", "int32"), ("Row major linear INT32", "int32"),
    ("Int64", "int64"), ("Row major linear INT64", "int64"),
    ("UInt8", "uint8"), ("Row major linear UInt8", "uint8"),
    ("Int8", "int8"), ("Channel major INT8 format", "int8"),
    ("Bool", "bool"), ("Row major linear BOOL", "bool"),
    ("Quad", "unknown"), ("", "unknown")]


@pytest.mark.parametrize("text,name", SPELLINGS)
@pytest.mark.parametrize("key", ["Format/Datatype", "Datatype"])
def test_each_spelling_of_a_tensor_type_is_read(text, name, key):
    from stages.device.trt_precision import _tensor_precision
    assert _tensor_precision({"Name": "t", key: text}) == name


def test_the_format_field_is_read_before_the_datatype_and_odd_records_are_unknown():
    from stages.device.trt_precision import _tensor_precision
    both = {"Format/Datatype": "Row major linear FP16 format", "Datatype": "Float"}
    assert _tensor_precision(both) == "fp16"
    assert _tensor_precision({"Format/Datatype": "", "Datatype": "Half"}) == "fp16"
    assert _tensor_precision({"Format/Datatype": None, "Datatype": "Int32"}) == "int32"
    for odd in ({"Name": "t"}, {}, "FP16", None, ["FP16"]):
        assert _tensor_precision(odd) == "unknown"


class Inspector(object):
    def __init__(self, trt, layers):
        self.trt, self.layers = trt, layers

    def get_engine_information(self, fmt):
        assert fmt == self.trt.LayerInformationFormat.JSON  # not ONELINE: JSON is parsed
        return json.dumps(self.layers if isinstance(self.layers, dict) else
                          {"Layers": self.layers, "Bindings": ["pixel_values", "logits"]})


class Engine(object):
    def __init__(self, trt, layers):
        self.trt, self.layers = trt, layers

    def create_engine_inspector(self):
        return Inspector(self.trt, self.layers)


class Runtime(object):
    """deserialize_cuda_engine gives `engine` (an exception is raised)."""

    def __init__(self, engine):
        self.engine, self.plans = engine, []

    def deserialize_cuda_engine(self, plan):
        self.plans.append(plan)
        if isinstance(self.engine, Exception):
            raise self.engine
        return self.engine


def layer(name, *outputs):
    """An engine layer as the inspector writes it; outputs: (tensor name, type text)."""
    return {"Name": name, "LayerType": "CaskConvolution",
            "Outputs": [{"Name": t, "Format/Datatype": text, "Dimensions": [1, 4]}
                        for t, text in outputs]}


def read(trt, layers):
    from stages.device.trt_precision import engine_layers
    runtime = Runtime(Engine(trt, layers))
    out = engine_layers(trt, runtime, b"the plan")
    assert runtime.plans == [b"the plan"]
    return out


def test_engine_layers_give_each_layer_its_outputs_and_their_precisions(trt):
    assert read(trt, [layer("conv + relu", ("r", "Row major linear FP16 format")),
                      layer("soft", ("logits", "Row major linear FP32"), ("idx", "Int32")),
                      {"Name": "no outputs"}, {"Outputs": [{"Format/Datatype": "Half"}]}]) == [
        ("conv + relu", ["r"], ["fp16"]), ("soft", ["logits", "idx"], ["fp32", "int32"]),
        ("no outputs", [], []), ("", [None], ["fp16"])]
    assert read(trt, {"Bindings": []}) == []  # a plan with no layer record at all


DESERIALIZE = "the engine could not be deserialized on this machine to inspect it"


@pytest.mark.parametrize("engine,words", [
    (RuntimeError("no kernel image for sm_53\nmore"),
     DESERIALIZE + " (no kernel image for sm_53\nmore)"),
    (None, DESERIALIZE),
    (object(), "TensorRT 8.2.1.8 has no engine inspector (it arrived in 8.2)")])
def test_no_inspector_record_says_why(trt, engine, words):
    from stages.device.trt_precision import check_engine, engine_layers
    assert engine_layers(trt, Runtime(engine), b"plan") == words
    pins = {"pinned_layers": ["soft"], "island_tensors": ["logits"]}
    assert check_engine(trt, Runtime(engine), b"plan", pins) == {"available": False,
                                                                "reason": words}


def test_a_plan_with_layer_names_only_is_no_precision_record(trt):
    from stages.device.trt_precision import check_engine
    words = "the plan holds layer names only (profiling verbosity below DETAILED)"
    assert read(trt, ["conv + relu", "soft"]) == words
    assert read(trt, [layer("conv", ("c", "Half")), "soft"]) == words
    assert check_engine(trt, Runtime(Engine(trt, ["soft"])), b"p", None) == {
        "available": False, "reason": words}


def test_layers_are_counted_by_their_first_outputs_precision():
    from stages.device.trt_precision import summary
    assert summary([("a", ["x"], ["fp16"]), ("b", ["y", "i"], ["fp32", "int32"]),
                    ("c", ["z"], ["fp16"]), ("d", [], []), ("e", ["w", "v"], ["int8", "fp16"])]
                   ) == {"fp16": 2, "fp32": 1, "none": 1, "int8": 1}
    assert summary([]) == {}


PINS = {"pinned_layers": ["soft", "norm/Pow", "(Unnamed Layer* 2) [Softmax]"],
        "island_tensors": ["logits", "norm_out"]}


@pytest.mark.parametrize("name,outputs,precisions,bad", [
    ("soft", ["x"], ["fp16"], True),  # by name
    ("relu + soft", ["x"], ["fp16"], True),  # inside a fused layer
    ("a + norm/Pow + b", ["y"], ["fp32", "fp16"], True),  # any output in fp16
    ("(Unnamed Layer* 2) [Softmax] + soft", ["y"], ["fp16"], True),
    ("myl_7", ["q", "logits"], ["fp16", "fp16"], True),  # by an island's output tensor
    ("soft", ["logits"], ["fp32"], False),  # pinned, and in fp32
    ("soft", ["logits"], ["int32"], False),
    ("Reformatting CopyNode for Output Tensor 0 to soft", ["logits"], ["fp16"], False),
    ("softer", ["x"], ["fp16"], False),  # a name containing a pinned name
    ("(Unnamed Layer* 2) [Softmax] + relu", ["y"], ["fp16"], True),  # spaces in a name
    ("Layer* + relu", ["y"], ["fp16"], False),
    ("relu+soft", ["x"], ["fp16"], False),  # not TensorRT's " + " between fused names
    ("norm", ["norm_out2"], ["fp16"], False)])
def test_which_engine_layers_are_offenders(name, outputs, precisions, bad):
    from stages.device.trt_precision import offenders
    assert offenders([(name, outputs, precisions)], PINS) == ([name] if bad else [])


def test_offenders_are_listed_in_engine_order():
    from stages.device.trt_precision import offenders
    layers = [("Reformatting CopyNode for Input Tensor 0 to soft", ["a"], ["fp16"]),
              ("soft", ["a"], ["fp16"]), ("relu", ["r"], ["fp16"]), ("myl", ["logits"], ["fp16"])]
    assert offenders(layers, PINS) == ["soft", "myl"]


def engine_of(trt, layers):
    return Runtime(Engine(trt, [layer(n, (t, kind)) for n, t, kind in layers]))


@pytest.mark.parametrize("count,tail", [(1, "soft0"), (8, "soft0, soft1, soft2, soft3, soft4, "
                                                          "soft5, soft6, soft7"),
                                        (9, "soft7 and 1 more"), (12, "soft7 and 4 more")])
def test_a_pinned_layer_in_fp16_fails_the_check_naming_at_most_eight(trt, count, tail):
    from stages.common.errors import PipelineError
    from stages.device.trt_precision import check_engine
    pins = {"pinned_layers": ["soft%d" % i for i in range(count)], "island_tensors": []}
    runtime = engine_of(trt, [("soft%d" % i, "t%d" % i, "Half") for i in range(count)])
    with pytest.raises(PipelineError) as e:
        check_engine(trt, runtime, b"plan", pins)
    text = str(e.value)
    assert text.startswith("TensorRT 8.2.1.8 ran layers pinned to fp32 in fp16 despite the "
                           "precision constraints: soft0")
    assert (tail + "; the engine was not saved") in text


def test_the_check_record_counts_the_layers_and_skips_offenders_without_pins(trt):
    from stages.device.trt_precision import check_engine
    runtime = engine_of(trt, [("soft", "logits", "Half"), ("relu", "r", "Half"),
                              ("conv", "c", "Float")])
    expected = {"available": True, "layers": 3, "layers_per_precision": {"fp16": 2, "fp32": 1}}
    assert check_engine(trt, runtime, b"plan", None) == expected  # fp32 or strong: no pins
    assert check_engine(trt, runtime, b"plan", {"pinned_layers": ["conv"],
                                                "island_tensors": ["c"]}) == expected
    assert runtime.plans == [b"plan", b"plan"]  # the plan just built is the one inspected
