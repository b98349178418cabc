"""The engine link's own checks, in this process, through the TensorRT and pycuda test doubles
(tests/doubles: NOT TensorRT, they show our calls and decisions, not that TensorRT builds):
precision.json and model.mixed.onnx must belong to this model.onnx, the timing cache is not read
when switched off, the out-of-memory retry (its boundary and any letter case), and which engine
layers the inspector read-back counts as running a pinned layer in fp16."""
import json
import os
import re
import sys

import pytest

from conftest import use_trt_doubles

onnx = pytest.importorskip("onnx")

ENGINE_CFG = {"precision": "fp16", "workspace_mb": 64, "timing_cache": True,
              "keep_fp32": ["softmax"]}


def tiny_onnx():
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["pixel_values"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["logits"], name="soft", axis=1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString()


@pytest.fixture(params=["8.2", "10"])
def device(request, tmp_path, monkeypatch):
    return make_device(request, tmp_path, monkeypatch)


def make_device(request, tmp_path, monkeypatch):
    """(cfg, layout, trt) of a project folder with a tiny model.onnx, its sidecar and a
    precision.json made from it, on a device emulated by the doubles (TensorRT 8.2 or 10)."""
    from runtime import files, sidecar
    from stages.common.layout import Layout
    monkeypatch.chdir(tmp_path)
    trt = use_trt_doubles(monkeypatch, request, request.param)
    layout = Layout({"artifacts": "artifacts", "golden": {"images": []}})
    data = tiny_onnx()
    files.write_bytes(layout.onnx_model, data)
    manifest = {"input": {"height": 1, "width": 4}, "labels": ["a", "b", "c", "d"],
                "mean": [0, 0, 0], "std": [1, 1, 1], "rescale_factor": 1.0}
    meta = sidecar.model_sidecar(manifest, "pillow13", [1, 4], files.sha256_bytes(data), [])
    files.write_json(os.path.join(layout.onnx_dir, "model.json"), meta)
    files.write_bytes(layout.precision_model, data)  # the double parses it like model.onnx
    files.write_json(layout.precision_report, {
        "onnx_sha256": meta["onnx_sha256"], "mixed_sha256": files.sha256_bytes(data),
        "islands": [{"node": "soft", "op": "Softmax", "outputs": ["logits"], "reason": "test"}]})
    return {"engine": dict(ENGINE_CFG)}, layout, trt


def build(cfg, layout):
    from stages.device import engine
    engine.run_build(cfg, layout)
    from stages.device import settings
    folder = settings.engine_folder(layout)
    return folder, folder.read()["engine"]["build"]


def test_the_tiny_build_goes_through_with_the_islands(device):
    cfg, layout, trt = device
    folder, record = build(cfg, layout)
    assert folder.exists() and record["precision"]["typing"] in ("weak", "strong")
    if record["precision"]["typing"] == "weak":
        assert record["precision"]["islands"] == 1 and not record["precision"]["unmatched_islands"]


def edit_report(layout, **changes):
    from runtime import files
    report = files.read_json(layout.precision_report)
    report.update(changes)
    files.write_json(layout.precision_report, report)


def test_a_precision_json_made_from_another_model_onnx_is_refused(device):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    edit_report(layout, onnx_sha256="0" * 64)
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert layout.precision_report in str(e.value) and "another model.onnx" in str(e.value)


def test_a_model_mixed_onnx_from_another_run_is_refused_where_it_is_built_from(device):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    edit_report(layout, mixed_sha256="0" * 64)
    if trt.__version__.startswith("8."):  # weak typing builds from model.onnx: not read at all
        assert build(cfg, layout)[1]["onnx"] == "model.onnx"
        return
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert layout.precision_model in str(e.value) and "mixed_sha256" in str(e.value)


def test_a_missing_model_mixed_onnx_is_refused_where_typing_is_strong(device):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    os.remove(layout.precision_model)
    if trt.__version__.startswith("8."):
        build(cfg, layout)
        return
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert layout.precision_model in str(e.value) and "engine.precision: fp32" in str(e.value)


def test_fp32_reads_neither_precision_file(device):
    cfg, layout, trt = device
    cfg["engine"]["precision"] = "fp32"
    edit_report(layout, onnx_sha256="0" * 64, mixed_sha256="0" * 64)
    folder, record = build(cfg, layout)
    assert record["precision"]["typing"] == "fp32" and record["onnx"] == "model.onnx"


def test_timing_cache_off_means_no_read_and_no_write(device, capsys):
    cfg, layout, trt = device
    folder, _ = build(cfg, layout)
    with open(folder.timing_cache, "rb") as f:
        saved = f.read()
    assert json.loads(saved.decode())["builds"] == 1
    cfg["engine"]["timing_cache"] = False
    capsys.readouterr()
    with open(folder.timing_cache, "wb") as f:
        f.write(b"not a timing cache")  # read, it would print a warning and say "saved"
    folder, record = build(cfg, layout)
    out = capsys.readouterr()
    assert "timing cache new" in out.out and "timing.cache" not in out.out + out.err
    assert record["timing_cache"] == "new"
    with open(folder.timing_cache, "rb") as f:
        assert f.read() == b"not a timing cache"  # not rewritten either
    cfg["engine"]["timing_cache"] = True
    folder.write_log([])
    with open(folder.timing_cache, "wb") as f:
        f.write(saved)
    assert build(cfg, layout)[1]["timing_cache"] == "reused"


@pytest.mark.parametrize("workspace_mb,limit,retried", [(64, 40, True), (32, 20, True),
                                                          (31, 20, False)])
def test_the_out_of_memory_retry_halves_the_workspace_down_to_its_lower_bound(
        device, monkeypatch, workspace_mb, limit, retried):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    cfg["engine"]["workspace_mb"] = workspace_mb
    monkeypatch.setenv("TRT_DOUBLE_OOM_ABOVE_MB", str(limit))
    if not retried:
        with pytest.raises(PipelineError) as e:
            build(cfg, layout)
        assert "add swap" in str(e.value)
        return
    folder, record = build(cfg, layout)
    assert record["oom_retry"] is True and record["workspace_mb"] == workspace_mb // 2
    with open(folder.build_log) as f:
        assert ("build_engine: TensorRT ran out of memory; retrying once with half the workspace "
                "(%d MB)\n" % (workspace_mb // 2)) in f.read()


@pytest.mark.parametrize("message", [
    "Requested amount of GPU memory (2147483648 bytes) could not be allocated",
    "CUDA OUT OF MEMORY", "Out Of Memory", "cudaErrorMemoryAllocation",
    "[TRT] Error Code 1: Cuda Runtime (out of memory)", "OutOfMemory in tactic",
    "Insufficient Memory for tactic", "FAILED TO ALLOCATE 1073741824 bytes"])
def test_out_of_memory_is_recognised_in_any_letter_case(message):
    from stages.device.trt_builder import out_of_memory
    assert out_of_memory(["[W] something else", message])
    assert out_of_memory([message.upper()]) and out_of_memory([message.lower()])
    assert not out_of_memory(["[E] network is invalid", "parser error"])


# the inspector read-back: which engine layers hold a pinned layer that ran in fp16
PINS = {"pinned_layers": ["soft", "norm/Pow"], "island_tensors": ["logits", "norm_out"]}


class Inspector(object):
    def __init__(self, layers):
        self.layers = layers

    def get_engine_information(self, fmt):
        return json.dumps({"Layers": self.layers})


class Runtime(object):
    """An engine whose inspector reports `layers` (name, output name, output type)."""

    def __init__(self, layers):
        self.layers = [{"Name": n, "Outputs": [{"Name": o, "Format/Datatype": "Row major linear "
                                                + t}]} for n, o, t in layers]

    def deserialize_cuda_engine(self, plan):
        return self

    def create_engine_inspector(self):
        return Inspector(self.layers)


def check(device_trt, layers):
    from stages.device.trt_precision import check_engine
    return check_engine(device_trt, Runtime(layers), b"plan", PINS)


@pytest.mark.parametrize("layers,bad", [
    ([("soft", "x", "FP16 format")], "soft"),  # by name
    ([("relu + soft", "x", "FP16 format")], "relu + soft"),  # by name inside a fused layer
    ([("myl_7", "logits", "Half")], "myl_7"),  # by an island's output tensor, renamed layer
    ([("a + norm/Pow + b", "y", "FP16")], "a + norm/Pow + b"),
])
def test_a_pinned_layer_running_in_fp16_is_an_offender(device, layers, bad):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    with pytest.raises(PipelineError) as e:
        check(trt, layers + [("relu", "r", "FP16 format")])
    assert bad in str(e.value) and "relu," not in str(e.value)


@pytest.mark.parametrize("layers", [
    [("soft", "logits", "FP32 format")],  # pinned, and in fp32
    [("Reformatting CopyNode for Output Tensor 0 to soft", "logits", "FP16 format")],
    [("softer", "x", "FP16 format")],  # only a name that contains a pinned name
    [("relu", "r", "FP16 format"), ("soft", "logits", "Float")],
])
def test_reformatting_layers_and_other_layers_are_not_offenders(device, layers):
    cfg, layout, trt = device
    record = check(trt, layers)
    assert record["available"] and record["layers"] == len(layers)


# --- what the first mutation run of the engine link let through ------------------------------

def test_the_build_record_names_its_source_settings_device_and_times(device, capsys):
    cfg, layout, trt = device
    folder, record = build(cfg, layout)
    meta = folder.read()["engine"]
    strong = not trt.__version__.startswith("8.")
    assert record["onnx"] == ("model.mixed.onnx" if strong else "model.onnx")
    assert meta["settings"] == cfg["engine"] and meta["tensorrt"] == trt.__version__
    assert meta["device"]["gpu"] == "Double GPU" and meta["device"]["tensorrt"] == trt.__version__
    assert 0 <= meta["build_seconds"] < 600
    with open(folder.build_log) as f:
        log = f.read().splitlines()
    assert log[-1].startswith("build_engine: built in ") and float(log[-1].split()[3]) < 600
    out = capsys.readouterr().out
    assert re.search(r"\nbuild_engine: built in \d+\.\d s, 0\.0 MB, \d+ network layers; ", out)
    assert "previous build" not in out
    cfg["engine"]["workspace_mb"] = 32
    earlier = folder.read()
    earlier["engine"]["build_seconds"] = 12.5  # the estimate reads the sidecar, not build.log
    with open(folder.sidecar, "w") as f:
        json.dump(earlier, f)
    build(cfg, layout)
    assert "timing cache saved, previous build 12 s)" in capsys.readouterr().out


def test_a_failed_build_logs_how_long_it_ran(device, monkeypatch):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    monkeypatch.setenv("TRT_DOUBLE_FAIL_BUILD", "1")
    with pytest.raises(PipelineError):
        build(cfg, layout)
    from stages.device import settings
    with open(settings.engine_folder(layout).build_log) as f:
        last = f.read().splitlines()[-1]
    assert last.startswith("build_engine: failed after ") and float(last.split()[3]) < 600


def test_a_strong_build_without_model_mixed_onnx_names_the_tensorrt(device):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    if trt.__version__.startswith("8."):
        return
    os.remove(layout.precision_model)
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert "TensorRT %s is strongly typed" % trt.__version__ in str(e.value)


def test_without_precision_json_the_keep_fp32_groups_of_the_sidecar_are_the_islands(device):
    from runtime import files
    cfg, layout, trt = device
    if not trt.__version__.startswith("8."):
        return
    os.remove(layout.precision_report)
    sidecar = os.path.join(layout.onnx_dir, "model.json")
    meta = files.read_json(sidecar)
    meta["precision_groups"] = {"softmax": {"tensors": ["logits"]}, "layernorm": {"tensors": []}}
    files.write_json(sidecar, meta)
    record = build(cfg, layout)[1]["precision"]
    assert record["islands"] == 1 and record["pinned_layers"] and not record["unmatched_islands"]
    assert record["island_tensors"] == ["logits"]
    cfg["engine"]["keep_fp32"] = ["softmax", "attention"]
    with pytest.raises(Exception) as e:
        build(cfg, layout)
    assert "engine.keep_fp32 names attention" in str(e.value)


def test_a_machine_without_tensorrt_is_refused_before_any_build(device, monkeypatch):
    from runtime import device as runtime_device
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt fails; the GPU stays
    monkeypatch.setattr(runtime_device, "_CACHE", {})
    assert runtime_device.fingerprint()["gpu"] and not runtime_device.fingerprint()["tensorrt"]
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert "no TensorRT or no CUDA GPU" in str(e.value)


def summary(typing, available=True, oom_retry=False):
    from stages.device.engine import summary_lines
    precision = {"typing": typing}
    if typing == "weak":
        precision.update(pinned_layers=["a", "b", "c"], islands=2,
                         pinned_by_op={"Softmax": 2, "Pow": 1})
    inspector = ({"available": True, "layers_per_precision": {"fp32": 3, "fp16": 10}}
                 if available else {"available": False, "reason": "no inspector"})
    return summary_lines({"precision": precision, "onnx": "model.mixed.onnx",
                          "inspector": inspector, "workspace_mb": 512,
                          "workspace_api": "max_workspace_size", "oom_retry": oom_retry})


def test_the_build_summary_in_words():
    assert summary("weak") == ["fp32 pinned: 3 layers for 2 islands (Pow 1, Softmax 2)",
                               "inspector: fp16 10, fp32 3 engine layers",
                               "workspace 512 MB via max_workspace_size"]
    assert summary("strong", available=False, oom_retry=True) == [
        "strongly typed from model.mixed.onnx", "inspector: unavailable (no inspector)",
        "workspace 512 MB via max_workspace_size (after an out-of-memory retry)"]
    assert summary("fp32")[0] == "fp32 engine"


def test_the_build_record_of_each_generation(device):
    cfg, layout, trt = device
    record = build(cfg, layout)[1]
    flags = trt.NetworkDefinitionCreationFlag
    assert record["detailed_profiling"] is True and "progress_monitor" in record
    assert record["inspector"]["available"] is True and record["inspector"]["layers"] >= 1
    if trt.__version__.startswith("8."):
        assert record["workspace_api"] == "max_workspace_size"
        assert record["precision"]["flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
        assert record["network_flags"] == 1 << int(flags.EXPLICIT_BATCH)
    else:
        assert record["workspace_api"] == "set_memory_pool_limit(WORKSPACE)"
        assert record["network_flags"] & (1 << int(flags.STRONGLY_TYPED))


@pytest.mark.parametrize("saved,state", [
    (b"not json", "replaced: the saved one was unreadable"),
    (json.dumps({"version": "7.1.3", "builds": 9}).encode(),
     "replaced: the saved one was from another TensorRT or GPU")])
def test_a_saved_timing_cache_tensorrt_cannot_use_is_replaced(device, capsys, saved, state):
    cfg, layout, trt = device
    folder, _ = build(cfg, layout)
    with open(folder.timing_cache, "wb") as f:
        f.write(saved)
    cfg["engine"]["workspace_mb"] = 32
    folder, record = build(cfg, layout)
    assert record["timing_cache"] == state
    assert "the saved timing.cache is %s" % state.split(" was ")[1] in capsys.readouterr().out
    with open(folder.timing_cache, "rb") as f:
        assert json.loads(f.read().decode())["version"] == trt.__version__  # a fresh one


def test_a_parse_error_names_each_node_and_its_operator(device):
    from onnx import TensorProto, helper
    from runtime import files
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    cfg["engine"]["precision"] = "fp32"
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("NoSuchOp", ["pixel_values"], ["logits"], name="odd")
    data = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                             opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=8).SerializeToString()
    files.write_bytes(layout.onnx_model, data)
    sidecar = os.path.join(layout.onnx_dir, "model.json")
    meta = files.read_json(sidecar)
    meta["onnx_sha256"] = files.sha256_bytes(data)
    files.write_json(sidecar, meta)
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    # 8.x parser errors know the node's index only; 10.x their name and operator too
    head = "node #0: " if trt.__version__.startswith("8.") else "node odd (NoSuchOp): "
    assert ("TensorRT %s cannot parse model.onnx: %s" % (trt.__version__, head)) in str(e.value)
    if not trt.__version__.startswith("8."):  # strongly typed: model.mixed.onnx is parsed
        cfg["engine"]["precision"] = "fp16"
        files.write_bytes(layout.precision_model, data)
        edit_report(layout, onnx_sha256=meta["onnx_sha256"], mixed_sha256=meta["onnx_sha256"])
        with pytest.raises(PipelineError) as e:
            build(cfg, layout)
        assert "cannot parse model.mixed.onnx: node odd" in str(e.value)


def test_a_gpu_without_fast_fp16_is_refused_for_an_fp16_build(device, monkeypatch):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    monkeypatch.setenv("TRT_DOUBLE_FAST_FP16", "0")
    if not trt.__version__.startswith("8."):
        return
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert "no fast fp16" in str(e.value)


def test_an_island_no_layer_computes_is_named_in_a_warning(device, capsys):
    cfg, layout, trt = device
    if not trt.__version__.startswith("8."):
        return
    edit_report(layout, islands=[{"node": "gone", "op": "Softmax", "outputs": ["nowhere"]}])
    record = build(cfg, layout)[1]["precision"]
    assert record["unmatched_islands"] == ["gone"] and record["pinned_layers"] == []
    assert "no layer of the parsed network computes the islands gone" in capsys.readouterr().out


def test_a_pinned_layer_the_build_ran_in_fp16_fails_the_build(device, monkeypatch):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    if not trt.__version__.startswith("8."):
        return
    monkeypatch.setenv("TRT_DOUBLE_IGNORE_PIN", "soft")
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert "ran layers pinned to fp32 in fp16" in str(e.value)
    from stages.device import settings
    assert not settings.engine_folder(layout).exists()


def helper_onnx():
    """pixel_values -> Relu -> Mul by a constant -> Softmax -> logits, plus a Shape output."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])
    s = helper.make_tensor_value_info("shape", TensorProto.INT64, [2])
    scale = numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), "scale")
    nodes = [helper.make_node("Relu", ["pixel_values"], ["r"], name="relu"),
             helper.make_node("Mul", ["scale", "r"], ["m"], name="mul"),
             helper.make_node("Softmax", ["m"], ["logits"], name="soft", axis=1),
             helper.make_node("Shape", ["m"], ["shape"], name="shape_of")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y, s], [scale]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString()


def test_pins_take_the_parser_helpers_of_an_island_and_nothing_upstream(device):
    from runtime import files
    cfg, layout, trt = device
    if not trt.__version__.startswith("8."):
        return
    data = helper_onnx()
    files.write_bytes(layout.onnx_model, data)
    sidecar = os.path.join(layout.onnx_dir, "model.json")
    meta = files.read_json(sidecar)
    meta["onnx_sha256"] = files.sha256_bytes(data)
    files.write_json(sidecar, meta)
    edit_report(layout, onnx_sha256=meta["onnx_sha256"], islands=[
        {"node": "mul", "op": "Mul", "outputs": ["m"]},
        {"node": "shape_of", "op": "Shape", "outputs": ["shape"]}])
    record = build(cfg, layout)[1]["precision"]
    pinned = record["pinned_layers"]
    assert "mul" in pinned and any("Constant" in n or "scale" in n for n in pinned)
    assert "relu" not in pinned and "shape_of" not in pinned  # upstream; an int64 output
    assert record["pinned_by_op"]["Mul"] == len(pinned) == 3 and not record["unmatched_islands"]


@pytest.mark.parametrize("key", ["Format/Datatype", "Datatype"])
def test_the_inspector_precisions_are_read_from_each_spelling(device, key):
    from stages.device.trt_precision import check_engine
    cfg, layout, trt = device
    types = ["FP32", "Float", "FP16", "Half", "BF16", "FP8", "Int32", "INT32", "Int64", "INT64",
             "Int8", "INT8", "Bool", "BOOL", "UInt8", "Quad"]
    runtime = Runtime([("l%d" % i, "t%d" % i, t) for i, t in enumerate(types)])
    for layer in runtime.layers:
        layer["Outputs"][0] = {"Name": layer["Outputs"][0]["Name"],
                               key: layer["Outputs"][0]["Format/Datatype"]}
    runtime.layers.append({"Name": "no outputs", "Outputs": []})
    record = check_engine(trt, runtime, b"plan", None)
    assert record["layers_per_precision"] == {"fp32": 2, "fp16": 2, "bf16": 1, "fp8": 1,
                                              "int32": 2, "int64": 2, "int8": 2, "bool": 2,
                                              "uint8": 1, "unknown": 1, "none": 1}


def test_without_precision_json_or_groups_keep_fp32_is_refused_in_one_sentence(device):
    from stages.common.errors import PipelineError
    cfg, layout, trt = device
    if not trt.__version__.startswith("8."):
        return
    os.remove(layout.precision_report)  # and the sidecar has no precision_groups at all
    with pytest.raises(PipelineError) as e:
        build(cfg, layout)
    assert "engine.keep_fp32 names softmax" in str(e.value)


@pytest.mark.parametrize("device", ["11"], indirect=True)
def test_an_fp16_build_on_tensorrt_11_is_strongly_typed_without_the_fast_fp16_query(device):
    cfg, layout, trt = device
    assert not hasattr(trt.Builder, "platform_has_fast_fp16")
    record = build(cfg, layout)[1]
    assert record["precision"]["typing"] == "strong" and record["onnx"] == "model.mixed.onnx"


class Config(object):
    """A builder config whose timing-cache calls behave as told."""

    def __init__(self, create, accept=True):
        self.create, self.accept, self.set = create, accept, []

    def create_timing_cache(self, data):
        return self.create(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.set.append((cache, ignore_mismatch))
        return self.accept


def test_a_timing_cache_tensorrt_rejects_outright_is_replaced_by_a_fresh_one(capsys):
    from stages.device.trt_builder import use_timing_cache

    def create(data):
        if data:
            raise RuntimeError("bad magic\nmore detail")
        return "fresh"
    config = Config(create)
    assert use_timing_cache(None, config, b"junk") == (
        "replaced: the saved one was unreadable (bad magic)")
    assert config.set == [("fresh", False)]
    assert "timing.cache is unreadable (bad magic); starting a fresh one" in capsys.readouterr().out
    assert use_timing_cache(None, Config(lambda d: None), b"") == (
        "none (TensorRT could not create one)")
    assert use_timing_cache(None, Config(lambda d: "c", accept=False), b"") == (
        "none (TensorRT could not create one)")
    assert use_timing_cache(None, Config(lambda d: "c"), b"") == "new"
