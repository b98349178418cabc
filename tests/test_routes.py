"""ARCHITECTURE.md's "where a change lands", walked: each route is taken here with no edit beyond
the files it names, and the rest of the project picks the change up."""
import json
import os
import subprocess
import sys

import pytest

from runtime import backends
from stages.common import config
from stages.common.errors import ConfigError
from stages.common.layout import Layout
from stages.device import settings

ECHO = '''"""A new backend as ARCHITECTURE.md describes it: one module, one register() line."""
from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend


class EchoBackend(OnnxRuntimeBackend):
    calls = 0

    def infer_impl(self, tensor):
        EchoBackend.calls += 1
        return OnnxRuntimeBackend.infer_impl(self, tensor)
'''

WALK = '''import sys; sys.path.insert(0, ".")
from runtime import backends
backends.register("echo", "echo_backend:EchoBackend")
from stages.common.config import load
from stages.common.layout import Layout
from stages.device.bench import run_bench
from stages.device.verify import run_verify
cfg = load("pipeline.yaml", {"backend": "echo", "n": "2", "cpu": "0"})
run_verify(cfg, Layout(cfg))
run_bench(cfg, Layout(cfg))
import echo_backend
print("CALLS", echo_backend.EchoBackend.calls)
'''


@pytest.fixture
def echo_registered():
    backends.register("echo", "echo_backend:EchoBackend")
    yield
    backends.unregister("echo")


def test_an_unregistered_backend_name_is_refused_by_the_schema():
    with pytest.raises(ConfigError) as e:
        config.load("pipeline.yaml", {"backend": "echo"})
    assert "auto, tensorrt or onnxruntime" in str(e.value)


def test_a_registered_backend_is_a_choice_of_every_backend_key(echo_registered):
    cfg = config.load("pipeline.yaml", {"backend": "echo"})
    assert cfg["verify"]["backend"] == cfg["infer"]["backend"] == cfg["bench"]["backend"] == "echo"
    assert backends.names()[-1] == "echo"
    # a host backend: a rebuilt engine does not rerun verify with it, but it does with auto
    assert not backends.may_use_engine("echo") and backends.may_use_engine("auto")
    assert settings.verify_settings(cfg, Layout(cfg), "echo")["engine_sha256"] is None


def test_auto_never_picks_a_backend_registered_after_onnxruntime(echo_registered):
    assert backends.choose("auto", None) == "onnxruntime"


@pytest.mark.host
def test_a_registered_backend_runs_verify_and_bench_with_no_other_edit(project):
    with open(os.path.join(project, "echo_backend.py"), "w") as f:
        f.write(ECHO)
    proc = subprocess.run([sys.executable, "-c", WALK], cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert proc.returncode == 0 and "CALLS" in proc.stdout, proc.stdout
    assert int(proc.stdout.split("CALLS")[1].split()[0]) > 0
    with open(os.path.join(project, "artifacts", "verify", "report.json")) as f:
        verify = json.load(f)
    assert verify["passed"] and verify["runtime"]["backend"] == "echo"
    bench_dir = os.path.join(project, "artifacts", "bench")
    with open(os.path.join(bench_dir, os.listdir(bench_dir)[0])) as f:
        bench = json.load(f)
    # a host backend: its infer time is not an engine's, and trtexec has nothing to check
    assert bench["runtime"]["backend"] == "echo" and "trtexec" not in bench


# ---- A new model family: one module and its line in FAMILIES

TOY = '''"""A new family as ARCHITECTURE.md describes it: a toy checkout holds SegFormer weights
under another model_type."""
from stages.host.families import segformer

TITLE = "Toy"
CALLS = []


def recognises(config):
    return config.get("model_type") == "toy"


def check_config(config, model_dir):
    CALLS.append("check_config")


def load(model_dir, safetensors):
    return segformer.load(model_dir, safetensors)


def load_processor(model_dir):
    return segformer.load_processor(model_dir)


def logits(model, pixel_values):
    CALLS.append("logits")
    return model(pixel_values=pixel_values).logits


def golden_case(model, processor, rgb):
    CALLS.append("golden_case")
    return segformer.golden_case(model, processor, rgb)


def rewrite(model, fold):
    CALLS.append("rewrite")
    return model


def sidecar_fields(graph_model, model_dir, fold):
    return {"toy": {"nodes": len(graph_model.graph.node)}}
'''

FAMILY_WALK = '''import sys; sys.path.insert(0, ".")
from stages.host import families
families.FAMILIES += ("toy_family",)
from stages.common.config import load
from stages.common.layout import Layout
from stages.host import checkout, golden, onnx_export
cfg = load("pipeline.yaml")
checkout.run_checkout(cfg, Layout(cfg))
golden.run_golden(cfg, Layout(cfg))
onnx_export.run_onnx(cfg, Layout(cfg))
import toy_family
print("CALLS", ",".join(toy_family.CALLS))
'''


@pytest.mark.host
def test_a_registered_family_runs_checkout_golden_and_onnx_with_no_other_edit(tmp_path):
    from conftest import copy_project, edit_yaml
    from stages.common import files
    from stages.host import families
    project = copy_project(str(tmp_path), with_artifacts=False)
    model = os.path.join(project, "models", "segformer-tiny-sidewalk", "config.json")
    files.write_json(model, dict(files.read_json(model), model_type="toy"))
    with pytest.raises(Exception) as e:
        families.for_config(files.read_json(model), "toy")
    assert "describes a 'toy' model, not a SegFormer" in str(e.value)
    with open(os.path.join(project, "toy_family.py"), "w") as f:
        f.write(TOY)
    edit_yaml(os.path.join(project, "pipeline.yaml"), "    - examples/street_1920x1080.jpg\n", "")
    proc = subprocess.run([sys.executable, "-c", FAMILY_WALK], cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=900)
    assert proc.returncode == 0 and "CALLS" in proc.stdout, proc.stdout
    calls = proc.stdout.split("CALLS")[1].split()[0].split(",")
    assert calls[:2] == ["check_config", "golden_case"] and {"logits", "rewrite"} <= set(calls)
    sidecar = files.read_json(os.path.join(project, "artifacts", "onnx", "model.json"))
    assert sidecar["toy"]["nodes"] > 0 and "precision_groups" not in sidecar


# ---- A new precision: one row in stages/common/precisions.py (its limits: an existing section)

PRECISION_WALK = '''import sys; sys.path.insert(0, ".")
from stages.common import precisions
row = precisions.Precision("fp16x", "fp16", "precision_model", precisions.WEAK, precisions.STRONG)
precisions.PRECISIONS["fp16x"] = row
from stages.common.config import load
from stages.common.layout import Layout
from stages.device import engine, settings
from stages.device.verify import run_verify
cfg = load("pipeline.yaml")
engine.run_build(cfg, Layout(cfg))
record = settings.engine_folder(Layout(cfg)).read()["engine"]
run_verify(cfg, Layout(cfg), "tensorrt")
print("BUILT", record["settings"]["precision"], record["build"]["precision"]["typing"])
'''


def test_a_precision_row_is_a_choice_of_engine_precision(monkeypatch):
    from stages.common import precisions
    assert config.key_spec("engine.precision").choices == ("fp32", "fp16")
    row = precisions.Precision("fp16x", "fp16", "precision_model", precisions.WEAK,
                               precisions.STRONG)
    monkeypatch.setitem(precisions.PRECISIONS, "fp16x", row)
    assert "fp16x" in config.key_spec("engine.precision").choices
    assert precisions.limits({"fp16": "fp16 limits"}, "fp16x") == "fp16 limits"
    assert row in precisions.linked() and precisions.get("fp32") not in precisions.linked()


@pytest.mark.host
@pytest.mark.parametrize("api,typing", [("8.2", "weak"), ("10", "strong")])
def test_a_precision_row_builds_and_verifies_with_no_other_edit(project, api, typing):
    from conftest import PYCUDA_DOUBLE, TRT_DOUBLE, edit_yaml
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp16 ", "precision: fp16x ")
    env = dict(os.environ, TRT_DOUBLE_API=api,
               PYTHONPATH=os.pathsep.join([TRT_DOUBLE, PYCUDA_DOUBLE]))
    proc = subprocess.run([sys.executable, "-c", PRECISION_WALK], cwd=project, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=900)
    assert proc.returncode == 0 and "BUILT" in proc.stdout, proc.stdout
    assert proc.stdout.split("BUILT")[1].split()[:2] == ["fp16x", typing]
    with open(os.path.join(project, "artifacts", "verify", "report.json")) as f:
        report = json.load(f)
    assert report["passed"] and report["precision"] == "fp16x"
    with open(os.path.join(project, "artifacts", "onnx", "precision.json")) as f:
        derived = json.load(f)["limits"]  # the row's verify key's limits: the derived ones
    assert report["limits"]["logits_max_abs"] == derived["logits_max_abs"]
    assert report["limit_sources"]["logits_max_abs"] == "derived"
