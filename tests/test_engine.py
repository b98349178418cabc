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
GENERATIONS = {"8.0": "trt8.0.1.6", "8.2": "trt8.2.1.8", "8.4": "trt8.4.3.1", "8.5": "trt8.5.2.2",
               "8.6": "trt8.6.1.6", "10": "trt10.0.0.6", "11": "trt11.1.0"}


def engine_dir(project, api="8.2", gpu="double-gpu_sm53"):
    return os.path.join(project, "artifacts", "engine", "%s_cuda10.2_%s" % (gpu, GENERATIONS[api]))


def build(project, api="8.2", *args, **env):
    e = {"TRT_DOUBLE_API": api}
    e.update(env)
    return doit(project, "build_engine", *args, env=e, doubles=DOUBLES)


@pytest.mark.parametrize("api", sorted(GENERATIONS))
def test_build_load_bind_run_on_every_generation(project, api):
    """build_engine, then verify with backend=tensorrt (load, bind, run) on each API generation."""
    code, out = build(project, api)
    assert code == 0, out
    folder = engine_dir(project, api)
    assert sorted(os.listdir(folder)) == ["build.log", "model.engine", "model.json", "timing.cache"]
    with open(os.path.join(folder, "model.json")) as f:
        meta = json.load(f)
    e, b = meta["engine"], meta["engine"]["build"]
    assert e["settings"]["precision"] == "fp16" and e["tensorrt"] == GENERATIONS[api][3:]
    assert e["device"]["gpu"] == "Double GPU" and meta["labels"][1] == "flat-road"
    strong = api in ("10", "11")
    assert b["precision"]["typing"] == ("strong" if strong else "weak")
    assert b["onnx"] == ("model.mixed.onnx" if strong else "model.onnx")
    assert b["workspace_api"] == ("max_workspace_size" if api in ("8.0", "8.2")
                                  else "set_memory_pool_limit(WORKSPACE)")
    assert b["inspector"]["available"] == (api != "8.0")
    if api != "8.0":
        assert (sum(b["inspector"]["layers_per_precision"].values())
                == b["inspector"]["layers"] > 100)
    with open(os.path.join(folder, "build.log")) as f:
        assert "inspector: " in f.read()
    code, out = doit(project, "verify", "backend=tensorrt", env={"TRT_DOUBLE_API": api},
                     doubles=DOUBLES)
    assert code == 0, out


def build_alone(project, api="8.2", **env):
    """build_engine without its upstream links (the precision link would rewrite precision.json)."""
    e = {"TRT_DOUBLE_API": api}
    e.update(env)
    return doit(project, "-s", "build_engine", env=e, doubles=DOUBLES)


def write_islands(project, nodes):
    """A small hand-made precision.json naming `nodes` (ONNX node names of model.onnx) as
    islands."""
    import onnx
    from runtime import files
    onnx_dir = os.path.join(project, "artifacts", "onnx")
    model = onnx.load(os.path.join(onnx_dir, "model.onnx"), load_external_data=False)
    by_name = dict((n.name, n) for n in model.graph.node)
    report = files.read_json(os.path.join(onnx_dir, "precision.json"))
    report["islands"] = [{"node": n, "op": by_name[n].op_type, "outputs": list(by_name[n].output),
                          "reason": "test"} for n in nodes]
    files.write_json(os.path.join(onnx_dir, "precision.json"), report)
    return model


def softmax_and_layernorm_nodes(project):
    import onnx
    model = onnx.load(os.path.join(project, "artifacts", "onnx", "model.onnx"))
    soft = [n.name for n in model.graph.node if n.op_type == "Softmax"]
    norm = [n.name for n in model.graph.node if "layer_norm" in n.name
            and n.op_type in ("Pow", "ReduceMean")]
    return soft, norm


def test_pins_are_the_islands_with_their_parser_helpers(project):
    soft, norm = softmax_and_layernorm_nodes(project)
    write_islands(project, soft + norm)
    code, out = build_alone(project)
    assert code == 0, out
    with open(os.path.join(engine_dir(project), "model.json")) as f:
        b = json.load(f)["engine"]["build"]
    p = b["precision"]
    assert p["islands"] == len(soft + norm) and p["unmatched_islands"] == []
    assert p["flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    # each Softmax: its SoftMax layer (unnamed output) and the Shuffle carrying the ONNX name;
    # each Pow: its Constant exponent helper (and a broadcast Shuffle)
    assert sum(1 for n in p["pinned_layers"] if n.endswith("[Softmax]")) == len(soft)
    assert set(soft) <= set(p["pinned_layers"]) and any(n.endswith("[Constant]")
                                                        for n in p["pinned_layers"])
    with open(os.path.join(engine_dir(project), "model.engine"), "rb") as f:
        layers = json.loads(f.read().split(b"\n")[1].decode())["layers"]
    softmax = [l for l in layers if "[Softmax]" in l["Name"]]
    assert len(softmax) == len(soft) and all("FP32" in l["Outputs"][0]["Format/Datatype"]
                                             for l in softmax)
    assert ("fp32 pinned: %d layers for %d islands" % (
        len(p["pinned_layers"]), len(soft + norm)) in out)


def test_a_pinned_layer_run_in_fp16_fails_the_build_naming_it(project):
    soft, _ = softmax_and_layernorm_nodes(project)
    write_islands(project, soft)
    code, out = build_alone(project, TRT_DOUBLE_IGNORE_PIN=soft[0])
    assert_one_sentence_error(code, out, "ran layers pinned to fp32 in fp16", soft[0],
                              "engine.precision: fp32")
    assert not os.path.exists(os.path.join(engine_dir(project), "model.engine"))


def test_rebuild_only_when_needed(project):
    assert executed(build(project)[1]) == ["build_engine"]
    assert executed(build(project)[1]) == []  # same ONNX, same device
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp16", "precision: fp32")
    out = build(project)[1]
    assert executed(out) == ["build_engine"] and "fp32 engine" in out
    code, out = doit(project, "info", "build_engine", env={"TRT_DOUBLE_API": "8.2"},
                     doubles=DOUBLES)
    assert "engine settings or device changed" not in out  # up to date now
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp32", "precision: fp16")
    code, out = doit(project, "info", "build_engine", env={"TRT_DOUBLE_API": "8.2"},
                     doubles=DOUBLES)
    assert "engine settings or device changed" in out and '"precision": "fp16"' in out
    assert executed(build(project, "10")[1]) == ["build_engine"]  # TensorRT upgrade
    out = build(project, "10", PYCUDA_DOUBLE_GPU="Orin;8.7")[1]  # another GPU
    assert executed(out) == ["build_engine"] and os.path.isdir(
        engine_dir(project, "10", "orin_sm87"))


def test_timing_cache_is_reused(project):
    build(project)
    edit_yaml(os.path.join(project, "pipeline.yaml"), "workspace_mb: 1024", "workspace_mb: 512")
    code, out = build(project)
    assert "timing cache saved" in out
    with open(os.path.join(engine_dir(project), "timing.cache")) as f:
        assert json.load(f)["builds"] == 2


def built_engine_bytes(project, new_workspace_mb):
    """Build once, then change a setting so the next build_engine must rebuild; returns the
    engine path and its bytes."""
    build(project)
    path = os.path.join(engine_dir(project), "model.engine")
    with open(path, "rb") as f:
        before = f.read()
    edit_yaml(os.path.join(project, "pipeline.yaml"), "workspace_mb: 1024",
              "workspace_mb: %d" % new_workspace_mb)
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
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp16", "precision: fp32")
    code, out = doit(project, "-s", "build_engine", env={"TRT_DOUBLE_API": "8.2"}, doubles=DOUBLES)
    assert_one_sentence_error(code, out, "cannot parse model.onnx",
                              "No importer registered for op: LayerNormalization")


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
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True,  # a background shell may ignore SIGINT:
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stdout:  # interrupt on an observed event: the build has started
        seen.append(line)
        if line.startswith("build_engine:") and "timing cache" in line:
            break
    assert seen and "timing cache" in seen[-1], "".join(seen)
    proc.send_signal(signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "Traceback" not in out, out
    with open(path, "rb") as f:
        assert f.read() == before
    code, out = build(project)
    assert executed(out) == ["build_engine"], out
