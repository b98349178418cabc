"""The bad-input catalogue, through the real doit command line: one sentence naming the file or
key and what to do, a non-zero exit, no traceback, and the last good artifacts left intact."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import (PYCUDA_DOUBLE, TRT_DOUBLE, assert_one_sentence_error, doit, edit_yaml,
                      executed, huge_png)

DOUBLES = (TRT_DOUBLE, PYCUDA_DOUBLE)
MODEL = os.path.join("models", "segformer-tiny-sidewalk")


def snapshot(project):
    """sha256 of every artifact (doit's own state file, which lives beside them, is not one)."""
    out = {}
    for folder, _, names in os.walk(os.path.join(project, "artifacts")):
        for n in names:
            if n.startswith(".doit.json"):
                continue
            with open(os.path.join(folder, n), "rb") as f:
                out[os.path.relpath(os.path.join(folder, n), project)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


def assert_intact(project, before):
    after = snapshot(project)
    for name, sha in before.items():
        assert after.get(name) == sha, name
    assert not [n for n in after if ".tmp" in n or n.endswith((".export", ".candidate"))], after


# --- the model checkout --------------------------------------------------------------------

def test_model_dir_missing(project):
    before = snapshot(project)
    edit_yaml(os.path.join(project, "pipeline.yaml"), "path: models/segformer-tiny-sidewalk",
              "path: models/nowhere")
    code, out = doit(project)
    assert_one_sentence_error(code, out, "model.path models/nowhere does not exist", "git clone")
    assert_intact(project, before)


@pytest.mark.parametrize("damage,needle", [
    ("lfs", "weights are a Git LFS pointer: run `git lfs pull` in models/segformer-tiny-sidewalk"),
    ("truncate", "is truncated or corrupt"),
    ("bert", "describes a 'bert' model, not a SegFormer"),
    ("no_preprocessor", "preprocessor_config.json is missing"),
])
def test_damaged_checkout(project, damage, needle):
    before = snapshot(project)
    d = os.path.join(project, MODEL)
    weights = os.path.join(d, "model.safetensors")
    if damage == "lfs":
        with open(weights, "w") as f:
            f.write("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    elif damage == "truncate":
        with open(weights, "r+b") as f:
            f.truncate(os.path.getsize(weights) // 3)
    elif damage == "bert":
        edit_yaml(os.path.join(d, "config.json"), '"model_type": "segformer"',
                  '"model_type": "bert"')
    else:
        os.remove(os.path.join(d, "preprocessor_config.json"))
    code, out = doit(project)
    assert_one_sentence_error(code, out, needle)
    assert_intact(project, before)


# --- images ----------------------------------------------------------------------------------

def write_bad_image(path, kind, source):
    if kind == "empty":
        open(path, "wb").close()
    elif kind == "truncated":
        with open(source, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    elif kind == "text":
        with open(path, "w") as f:
            f.write("hello, I am not a JPEG\n")
    elif kind == "huge":
        huge_png(path)


@pytest.mark.parametrize("kind,name,needle", [
    ("empty", "empty.jpg", "is empty (0 bytes)"),
    ("truncated", "cut.jpg", "cannot be decoded (it is truncated)"),
    ("text", "text.jpg", "cannot be decoded (it is not a readable image)"),
    ("huge", "huge.png", "is 20000x20000 (400 MP), over the 80 MP limit"),
])
def test_bad_images_are_refused_with_a_sentence(project, tmp_path, kind, name, needle):
    path = str(tmp_path / name)
    write_bad_image(path, kind, os.path.join(project, "examples", "odd_641x479.jpg"))
    code, out = doit(project, "infer", "image=" + path, "out=" + str(tmp_path / "out"))
    assert_one_sentence_error(code, out, needle, name)


def test_16bit_grey_and_rgba_pngs_are_converted(project, tmp_path):
    rng = np.random.RandomState(0)
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.fromarray((rng.rand(60, 80) * 65535).astype(np.uint16)).save(str(folder / "deep16.png"))
    Image.fromarray(rng.randint(0, 256, (60, 80)).astype(np.uint8), "L").save(
        str(folder / "grey.png"))
    Image.fromarray(rng.randint(0, 256, (60, 80, 4)).astype(np.uint8), "RGBA").save(
        str(folder / "alpha.png"))
    with Image.open(str(folder / "deep16.png")) as im:
        assert im.mode.startswith("I")
    code, out = doit(project, "infer", "image=" + str(folder), "out=" + str(tmp_path / "out"))
    assert code == 0, out
    assert len(os.listdir(str(tmp_path / "out"))) == 6


# --- configuration and command line ---------------------------------------------------------

@pytest.mark.parametrize("old,new,needle", [
    ("  simplify: true", "  simplfy: true", "Unknown key 'onnx.simplfy' in pipeline.yaml"),
    ("  workspace_mb: 1024", "  workspace_mb: lots", "Key 'engine.workspace_mb' in pipeline.yaml "
                                                     "must be an integer"),
    ("  image: examples/street_1920x1080.jpg", "  image: examples/missing.jpg",
     "Key 'bench.image' in pipeline.yaml names"),
])
def test_bad_pipeline_yaml(project, old, new, needle):
    edit_yaml(os.path.join(project, "pipeline.yaml"), old, new)
    code, out = doit(project, "list")
    assert code == 2 and "Traceback" not in out and needle in out, out


def test_unknown_task_variable(project):
    code, out = doit(project, "infer", "imgae=x")
    assert code == 2 and "Traceback" not in out
    assert "Unknown variable 'imgae='" in out and "image" in out


# --- engines and devices (through the TensorRT and pycuda doubles) --------------------------

def engine_folder(project, version):
    return os.path.join(project, "artifacts", "engine", "double-gpu_sm53_cuda10.2_trt" + version)


def test_engine_built_for_another_tensorrt(project):
    assert doit(project, "build_engine", env={"TRT_DOUBLE_API": "8.2"}, doubles=DOUBLES)[0] == 0
    # copied by hand
    shutil.move(engine_folder(project, "8.2.1.8"), engine_folder(project, "10.0.0.6"))
    code, out = doit(project, "-s", "verify", "backend=tensorrt", env={"TRT_DOUBLE_API": "10"},
                     doubles=DOUBLES)
    assert_one_sentence_error(code, out, "TensorRT 8.2.1.8", "TensorRT 10.0.0.6", "rebuild it here")


def test_corrupt_engine_file(project):
    assert doit(project, "build_engine", env={"TRT_DOUBLE_API": "10"}, doubles=DOUBLES)[0] == 0
    with open(os.path.join(engine_folder(project, "10.0.0.6"), "model.engine"), "wb") as f:
        f.write(b"\x00garbage" * 100)
    code, out = doit(project, "-s", "verify", "backend=tensorrt", env={"TRT_DOUBLE_API": "10"},
                     doubles=DOUBLES)
    assert_one_sentence_error(code, out, "model.engine does not match the sha256",
                              "doit build_engine")


def test_corrupt_engine_that_its_sidecar_vouches_for(project):
    # the sidecar's hash was updated too (not tampering, a bad plan): TensorRT's refusal is reported
    assert doit(project, "build_engine", env={"TRT_DOUBLE_API": "10"}, doubles=DOUBLES)[0] == 0
    folder = engine_folder(project, "10.0.0.6")
    garbage = b"\x00garbage" * 100
    with open(os.path.join(folder, "model.engine"), "wb") as f:
        f.write(garbage)
    with open(os.path.join(folder, "model.json")) as f:
        meta = json.load(f)
    meta["engine"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(meta, f)
    code, out = doit(project, "-s", "verify", "backend=tensorrt", env={"TRT_DOUBLE_API": "10"},
                     doubles=DOUBLES)
    assert_one_sentence_error(code, out, "could not be deserialized", "doit build_engine")


def test_nvcc_missing_on_the_device(project):
    env = {"PATH": "/usr/bin:/bin", "CUDA_HOME": "/nonexistent"}
    code, out = doit(project, "-s", "runtime_check", env=env, doubles=DOUBLES)
    assert_one_sentence_error(code, out, "nvcc is not on PATH",
                              "export PATH=/usr/local/cuda/bin:$PATH")


def test_no_cuda_device(project):
    code, out = doit(project, "runtime_check")
    assert_one_sentence_error(code, out, "needs a CUDA GPU with pycuda")


# --- Ctrl-C ------------------------------------------------------------------------------------

def interrupt_when(proc, happened, timeout=900):
    """Send Ctrl-C to `proc` as soon as happened(lines printed so far) is true: an observed event,
    never a sleep. Fails (with the output) if the process ends first or the timeout passes."""
    import threading
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while not happened(lines):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            reader.join(10)
            pytest.fail("the event never came before the process ended:\n" + "".join(lines))
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=timeout)
    reader.join(timeout)
    return "".join(lines)


def default_sigint():
    """In the child: Ctrl-C's default action, even when the tests run in a background job of a
    shell (which ignores SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def onnx_export_in_progress(project):
    """True from the moment the export's temp file exists until model.onnx is replaced: one of
    its temp, .export or .candidate files is always there in that window."""
    folder = os.path.join(project, "artifacts", "onnx")

    def check(lines):
        if not any(l.startswith(".  onnx") for l in lines):
            return False
        names = os.listdir(folder) if os.path.isdir(folder) else []
        return any(n.startswith(".model.onnx") or n.endswith((".export", ".candidate"))
                   for n in names)
    return check


@pytest.mark.host
def test_ctrl_c_during_onnx_export_keeps_artifacts_and_reruns_it(project):
    before = snapshot(project)
    edit_yaml(os.path.join(project, "pipeline.yaml"), "opset: 13 ", "opset: 12 ")
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # doit's ".  onnx" line arrives as it is printed
    proc = subprocess.Popen([sys.executable, "-m", "doit"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, preexec_fn=default_sigint)
    out = interrupt_when(proc, onnx_export_in_progress(project))
    assert proc.returncode != 0, out
    assert_intact(project, before)
    code, out = doit(project)
    assert code == 0, out
    ran = executed(out)
    assert ran[0] == "onnx" and "checkout" not in ran and "golden" not in ran
