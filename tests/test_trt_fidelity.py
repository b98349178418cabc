"""Issue 12: the TensorRT test double exposes exactly the bindings' surface of each release (from
NVIDIA/TensorRT's source, tests/doubles/tensorrt_double/surface.json), behaves like pybind11, and
catches each problem the project had; the engine link and backend survive each of them.
These run against the double, not TensorRT."""
import json
import os
import subprocess
import sys

import pytest

from conftest import PYCUDA_DOUBLE, ROOT, TRT_DOUBLE, assert_one_sentence_error, doit, edit_yaml
from test_engine import DOUBLES, build, build_alone, engine_dir

RELEASES = ("8.0", "8.2", "8.4", "8.5", "8.5.3", "8.6", "10", "11")
SURFACE = os.path.join(TRT_DOUBLE, "surface.json")


def in_double(api, code, extra_path=(), numpy="1.24"):
    """Run `code` in a fresh interpreter with the double of release `api` (seeing numpy 1.24, which
    has no np.bool); returns (rc, output)."""
    env = dict(os.environ, TRT_DOUBLE_API=api, PYTHONIOENCODING="utf-8", TRT_DOUBLE_NUMPY=numpy,
               PYTHONPATH=os.pathsep.join(list(extra_path) + [TRT_DOUBLE, PYCUDA_DOUBLE, ROOT]))
    p = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    return p.returncode, p.stdout


SURFACE_CHECK = """
import json, tensorrt as trt
facts = trt.surface()
wrong = []
for fact, present in sorted(facts.items()):
    owner, _, member = fact.partition(".")
    if owner == "trt":
        has = hasattr(trt, member)
    elif not member:
        has = hasattr(trt, owner)
    else:
        has = hasattr(trt, owner) and hasattr(getattr(trt, owner), member)
        if not hasattr(trt, owner) and present:
            has = False
    if has != present:
        wrong.append(fact)
print(json.dumps({"facts": len(facts), "wrong": wrong}))
"""


@pytest.mark.parametrize("api", RELEASES)
def test_every_mode_exposes_exactly_its_tables_surface(api):
    code, out = in_double(api, SURFACE_CHECK)
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["facts"] == 192 and result["wrong"] == []


def test_surface_table_cites_tag_and_path_for_every_present_fact():
    with open(SURFACE) as f:
        generations = json.load(f)["generations"]
    assert sorted(generations) == ["10", "11", "8.0", "8.2", "8.4-8.6"]
    for gen in generations.values():
        assert gen["tag"] and len(gen["commit"]) == 40
        for fact in gen["facts"].values():
            assert fact["tag"] and (fact.get("path") or not fact["present"])


STRICT = """
import tensorrt as trt
import pycuda.driver as drv
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "ok"
    except Exception as e:
        results[name] = type(e).__name__
logger = trt.Logger(trt.Logger.WARNING)
config = trt.Builder(logger).create_builder_config()
attempt("progress_monitor", lambda: setattr(config, "progress_monitor", None))
attempt("set_timing_cache(None)", lambda: config.set_timing_cache(None, False))
attempt("create_timing_cache(str)", lambda: config.create_timing_cache("x"))
attempt("Builder(str)", lambda: trt.Builder("logger"))
class NoBase(trt.ILogger):
    def __init__(self):
        pass
    def log(self, severity, msg):
        pass
attempt("ILogger without base __init__", NoBase)
attempt("ILogger.WARNING", lambda: trt.ILogger.WARNING)
print(results)
"""


def test_pybind_like_strictness():
    code, out = in_double("8.2", STRICT)
    assert code == 0, out
    r = eval(out.strip().splitlines()[-1])
    assert r == {"progress_monitor": "AttributeError", "set_timing_cache(None)": "TypeError",
                 "create_timing_cache(str)": "TypeError", "Builder(str)": "TypeError",
                 "ILogger without base __init__": "TypeError", "ILogger.WARNING": "ok"}
    code, out = in_double("8.0", STRICT)
    # 8.0: on Logger only
    assert eval(out.strip().splitlines()[-1])["ILogger.WARNING"] == "AttributeError"


NPTYPE = """
import tensorrt as trt
from runtime.trt_types import to_numpy
try:
    trt.nptype(trt.float32)
    print("nptype ok")
except AttributeError:
    print("nptype AttributeError")
print("project", to_numpy(trt.float32), to_numpy(trt.float16))
"""


@pytest.mark.parametrize("api,fails", [("8.0", True), ("8.2", True), ("8.4", True), ("8.5", True),
                                       ("8.5.3", False), ("10", False)])
def test_nptype_fails_like_the_release_and_the_project_table_does_not(api, fails):
    code, out = in_double(api, NPTYPE)
    assert code == 0, out
    assert ("nptype AttributeError" if fails else "nptype ok") in out
    assert "project float32 float16" in out


def test_jetpack5_engine_opens_with_numpy_without_np_bool(project):
    """TensorRT 8.5.2 (JetPack 5.1) with numpy 1.24-1.26: the backend must not call trt.nptype."""
    code, out = build(project, "8.5")
    assert code == 0, out
    env = {"TRT_DOUBLE_API": "8.5", "TRT_DOUBLE_NUMPY": "1.24"}
    code, out = doit(project, "verify", "backend=tensorrt", env=env, doubles=DOUBLES)
    assert code == 0 and "verify: backend tensorrt" in out, out
    # and the emulated release's own trt.nptype does fail there, so the test above could fail
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(DOUBLES), **env)
    probe = subprocess.run([sys.executable, "-c",
                            "import tensorrt as trt; trt.nptype(trt.float32)"], env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
    assert probe.returncode != 0 and "bool" in probe.stdout, probe.stdout


@pytest.mark.parametrize("api", ["8.2", "10"])
def test_a_log_message_print_cannot_encode_does_not_abort_the_build(project, api):
    code, out = build(project, api, TRT_DOUBLE_WARN="tactic \u00e9\u00e8 skipped",
                      PYTHONIOENCODING="ascii")
    assert code == 0, out
    assert "tactic ?? skipped" in out


def test_corrupt_timing_cache_is_replaced_with_a_warning(project):
    build(project)
    with open(os.path.join(engine_dir(project), "timing.cache"), "wb") as f:
        f.write(b"\x00garbage from another tool")
    edit_yaml(os.path.join(project, "pipeline.yaml"), "workspace_mb: 1024", "workspace_mb: 512")
    code, out = build(project)
    assert code == 0, out
    assert "warning: the saved timing.cache is unreadable; starting a fresh one" in out
    with open(os.path.join(engine_dir(project), "model.json")) as f:
        assert json.load(f)["engine"]["build"]["timing_cache"].startswith("replaced")


@pytest.mark.parametrize("api", ["8.2", "10"])
def test_engine_with_io_the_sidecar_does_not_name_is_refused(project, api):
    from runtime import files
    build(project, api)
    folder = engine_dir(project, api)
    path = os.path.join(folder, "model.engine")
    with open(path, "rb") as f:
        magic, head, rest = f.read().split(b"\n", 2)
    header = json.loads(head.decode())
    header["io"].append(["attention_probs", False, [1, 1, 64, 64], "FLOAT"])
    plan = magic + b"\n" + json.dumps(header).encode() + b"\n" + rest
    files.write_bytes(path, plan)
    meta = files.read_json(os.path.join(folder, "model.json"))
    meta["engine"]["sha256"] = files.sha256_bytes(plan)
    files.write_json(os.path.join(folder, "model.json"), meta)
    code, out = doit(project, "verify", "backend=tensorrt", env={"TRT_DOUBLE_API": api},
                     doubles=DOUBLES)
    assert_one_sentence_error(code, out, "attention_probs", "but its sidecar names",
                              "rebuild the engine")


def test_out_of_memory_retries_once_with_half_the_workspace(project):
    code, out = build(project, "8.2", TRT_DOUBLE_OOM_ABOVE_MB="600")
    assert code == 0, out
    assert "retrying once with half the workspace (512 MB)" in out
    with open(os.path.join(engine_dir(project), "model.json")) as f:
        b = json.load(f)["engine"]["build"]
    assert b["workspace_mb"] == 512 and b["oom_retry"] is True
    code, out = build_alone(project, TRT_DOUBLE_OOM_ABOVE_MB="100", PYCUDA_DOUBLE_GPU="Other;7.2")
    assert_one_sentence_error(code, out, "could not build the engine", "swap")
    assert out.count("retrying once") == 1


def test_progress_monitor_only_where_bound_and_called(project):
    code, out = build(project, "8.6")
    assert code == 0 and "phase Building engine" not in out  # no IProgressMonitor before 9.0
    code, out = build(project, "11")
    assert code == 0 and "build_engine: phase Building engine (3 steps)" in out, out


def test_strong_typing_has_no_weak_call_and_needs_the_mixed_model(project):
    code, out = build(project, "11")
    assert code == 0, out
    with open(os.path.join(engine_dir(project, "11"), "model.json")) as f:
        b = json.load(f)["engine"]["build"]
    assert b["precision"] == {"typing": "strong"} and b["onnx"] == "model.mixed.onnx"
    os.remove(os.path.join(project, "artifacts", "onnx", "model.mixed.onnx"))
    code, out = build_alone(project, "11", PYCUDA_DOUBLE_GPU="Other;8.6")
    assert_one_sentence_error(code, out, "strongly typed", "model.mixed.onnx", "doit precision")


def test_weak_typing_call_on_a_strongly_typed_network_fails_in_the_double():
    code, out = in_double("10", """
import tensorrt as trt
logger = trt.Logger(trt.Logger.WARNING)
b = trt.Builder(logger)
n = b.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
c = b.create_builder_config()
c.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 20)
c.set_flag(trt.BuilderFlag.FP16)
n._load(b"", [], [], [])
print("plan", b.build_serialized_network(n, c))
""")
    assert "not allowed on a strongly typed network" in out and "plan None" in out


def test_heartbeat_estimates_time_left_from_the_previous_build(project):
    from runtime.engine_folder import EngineFolder
    from stages.device.trt_progress import Heartbeat
    build(project)
    seconds = EngineFolder(engine_dir(project)).previous_build_seconds()
    assert seconds is not None and seconds >= 0
    assert Heartbeat(previous=300).message(60) == ("build_engine: still building, 60 s elapsed, "
                                                   "about 240 s left (the previous build here took "
                                                   "300 s)...")
    assert "longer than the previous build here (300 s)" in Heartbeat(previous=300).message(400)
    edit_yaml(os.path.join(project, "pipeline.yaml"), "workspace_mb: 1024", "workspace_mb: 512")
    code, out = build(project)
    assert ", previous build " in out


def test_gate_tables_for_8_0_11_and_rtx_cite_their_sources(built_project):
    import onnx
    from stages.common.config import TRT_TARGETS
    from stages.host import onnx_gate
    model = onnx.load(os.path.join(built_project, "artifacts", "onnx", "model.onnx"))
    for target in ("8.0", "11", "rtx"):
        assert target in TRT_TARGETS
        table = onnx_gate.load_table(target)
        assert table["source"].startswith("https://github.com/onnx/onnx-tensorrt/blob/")
        assert onnx_gate.check(model, target)["unsupported_ops"] == []
    assert "Einsum" not in onnx_gate.load_table("8.0")["supported"]  # onnx-tensorrt 8.0-GA lacks it
    assert "nearest" in onnx_gate.load_table("rtx")["source_note_rtx"]
