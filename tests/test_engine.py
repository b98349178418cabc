"""The engine link through the TensorRT test double (tests/doubles), on both API generations.
This exercises our adapter's use of the documented API; it is not a test of TensorRT itself."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PYCUDA_DOUBLE, TRT_DOUBLE, assert_one_sentence_error, doit, edit_yaml, executed

DOUBLES = (TRT_DOUBLE, PYCUDA_DOUBLE)
GENERATIONS = {"8.2": "trt8.2.1.8", "10": "trt10.3.0.26"}


def engine_dir(project, api="8.2", gpu="double-gpu_sm53"):
    return os.path.join(project, "artifacts", "engine", "%s_cuda10.2_%s" % (gpu, GENERATIONS[api]))


def build(project, api="8.2", *args, **env):
    e = {"TRT_DOUBLE_API": api}
    e.update(env)
    return doit(project, "build_engine", *args, env=e, doubles=DOUBLES)


@pytest.mark.parametrize("api,workspace_api", [("8.2", "max_workspace_size"),
                                               ("10", "set_memory_pool_limit(WORKSPACE)")])
def test_build_on_both_generations_writes_engine_and_sidecar(project, api, workspace_api):
    code, out = build(project, api)
    assert code == 0, out
    folder = engine_dir(project, api)
    assert sorted(os.listdir(folder)) == ["build.log", "model.engine", "model.json", "timing.cache"]
    with open(os.path.join(folder, "model.json")) as f:
        meta = json.load(f)
    e = meta["engine"]
    assert e["settings"]["precision"] == "fp16" and "precision" not in e and e["tensorrt"] == GENERATIONS[api][3:]
    assert e["device"]["gpu"] == "Double GPU" and e["device"]["compute_capability"] == "5.3"
    assert e["build"]["workspace_api"] == workspace_api and e["build"]["explicit_batch_flag"] == (api == "8.2")
    assert e["build"]["pinned_fp32"] == {"LayerNorm": 154, "Softmax": 5}
    with open(os.path.join(project, "artifacts", "onnx", "model.json")) as f:
        assert meta["onnx_sha256"] == json.load(f)["onnx_sha256"]
    assert meta["labels"][1] == "flat-road" and len(meta["palette"]) == 35
    assert meta["input"] == {"name": "pixel_values", "shape": [1, 3, 256, 256], "dtype": "float32"}
    assert "fp32 pinned: LayerNorm 154 layers, Softmax 5 layers" in out


def test_pinned_layers_are_the_layernorm_chains_and_softmax(project):
    build(project)
    with open(os.path.join(engine_dir(project), "model.engine"), "rb") as f:
        header = json.loads(f.read().split(b"\n")[1].decode())
    assert header["fp16"] and header["obey"]
    ops = set(name.rsplit("/", 1)[-1].split("_")[0] for name in header["pinned"])
    assert ops == {"ReduceMean", "Sub", "Pow", "Add", "Sqrt", "Div", "Softmax"}


def test_rebuild_only_when_needed(project):
    assert executed(build(project)[1]) == ["build_engine"]
    assert executed(build(project)[1]) == []  # same ONNX, same device
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp16", "precision: fp32")
    out = build(project)[1]
    assert executed(out) == ["build_engine"] and "fp32 engine" in out
    code, out = doit(project, "info", "build_engine", env={"TRT_DOUBLE_API": "8.2"}, doubles=DOUBLES)
    assert "engine settings or device changed" not in out  # up to date now
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp32", "precision: fp16")
    code, out = doit(project, "info", "build_engine", env={"TRT_DOUBLE_API": "8.2"}, doubles=DOUBLES)
    assert "engine settings or device changed" in out and '"precision": "fp16"' in out
    assert executed(build(project, "10")[1]) == ["build_engine"]  # TensorRT upgrade
    out = build(project, "10", PYCUDA_DOUBLE_GPU="Orin;8.7")[1]  # another GPU
    assert executed(out) == ["build_engine"] and os.path.isdir(engine_dir(project, "10", "orin_sm87"))


def test_timing_cache_is_reused(project):
    build(project)
    edit_yaml(os.path.join(project, "pipeline.yaml"), "workspace_mb: 1024", "workspace_mb: 512")
    code, out = build(project)
    assert "timing cache reused" in out
    with open(os.path.join(engine_dir(project), "timing.cache")) as f:
        assert json.load(f)["builds"] == 2


def built_engine_bytes(project, new_workspace_mb):
    """Build once, then change a setting so the next build_engine must rebuild; returns the
    engine path and its bytes."""
    build(project)
    path = os.path.join(engine_dir(project), "model.engine")
    with open(path, "rb") as f:
        before = f.read()
    edit_yaml(os.path.join(project, "pipeline.yaml"), "workspace_mb: 1024", "workspace_mb: %d" % new_workspace_mb)
    return path, before


def test_fp16_without_fast_fp16_is_an_error(project):
    code, out = build(project, "8.2", TRT_DOUBLE_FAST_FP16="0")
    assert_one_sentence_error(code, out, "no fast fp16", "engine.precision: fp32")


def test_failed_build_keeps_the_previous_engine_and_mentions_swap(project):
    path, before = built_engine_bytes(project, 2048)
    code, out = build(project, "8.2", TRT_DOUBLE_FAIL_BUILD="1")
    assert_one_sentence_error(code, out, "could not build the engine", "swap")
    with open(path, "rb") as f:
        assert f.read() == before
    assert [n for n in os.listdir(engine_dir(project)) if ".tmp" in n] == []


def test_parser_errors_list_each_node(project):
    from conftest import rewrite_onnx_with_layernorm
    rewrite_onnx_with_layernorm(project)
    code, out = doit(project, "-s", "build_engine", env={"TRT_DOUBLE_API": "8.2"}, doubles=DOUBLES)
    assert_one_sentence_error(code, out, "cannot parse model.onnx", "No importer registered for op: LayerNormalization")


def test_host_without_tensorrt_stops_at_once(project):
    t0 = time.time()
    code, out = doit(project, "build_engine")
    assert_one_sentence_error(code, out, "built on the target device", "doit build_engine")
    assert executed(out) == ["build_engine"] and time.time() - t0 < 10


def test_ctrl_c_during_build_keeps_previous_engine_and_next_run_rebuilds(project):
    path, before = built_engine_bytes(project, 4096)
    env = dict(os.environ, TRT_DOUBLE_API="8.2", TRT_DOUBLE_SLOW_BUILD="5",
               PYTHONPATH=os.pathsep.join(DOUBLES + (os.environ.get("PYTHONPATH", ""),)))
    proc = subprocess.Popen([sys.executable, "-m", "doit", "build_engine"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    with open(path, "rb") as f:
        assert f.read() == before
    code, out = build(project)
    assert executed(out) == ["build_engine"], out
