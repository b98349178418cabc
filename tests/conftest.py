"""Shared helpers: run the real `doit` command line in a copy of the project, and skip markers."""
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from importlib.util import find_spec

import pytest

# A shell's background job starts with SIGINT ignored, and its children inherit that, so the
# Ctrl-C tests' doit processes would never see the signal. A handled signal is reset to the
# default in a child, so handling it here gives every child a normal Ctrl-C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOUBLES = os.path.join(ROOT, "tests", "doubles")
TRT_DOUBLE = os.path.join(DOUBLES, "tensorrt_double")
PYCUDA_DOUBLE = os.path.join(DOUBLES, "pycuda_double")
sys.path.insert(0, ROOT)

HAS_HOST = bool(find_spec("torch") and find_spec("transformers"))


def _has_gpu():
    try:
        import pycuda.driver as drv
        drv.init()
        return drv.Device.count() > 0 and not getattr(sys.modules.get("pycuda"), "__double__",
                                                      False)
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    gpu = _has_gpu()
    for item in items:
        if "gpu" in item.keywords and not gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU with pycuda here (run on the GPU "
                                                    "test machine)"))
        if "host" in item.keywords and not HAS_HOST:
            item.add_marker(pytest.mark.skip(reason="needs torch and transformers"))


def copy_project(dest, with_artifacts=True):
    """A copy of the project (code, model, examples, and the built artifacts) to run doit in."""
    ignore = shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".devwheels", "*.pyc",
                                    "bundle", "infer", "verify", "bench", "engine")
    for name in ("dodo.py", "pipeline.yaml", "requirements-device.txt"):
        if os.path.exists(os.path.join(ROOT, name)):
            shutil.copy2(os.path.join(ROOT, name), dest)
    for name in ("stages", "runtime", "models", "examples", "datasets"):
        if os.path.isdir(os.path.join(ROOT, name)):
            shutil.copytree(os.path.join(ROOT, name), os.path.join(dest, name), ignore=ignore)
    if with_artifacts and os.path.isdir(os.path.join(ROOT, "artifacts")):
        shutil.copytree(os.path.join(ROOT, "artifacts"), os.path.join(dest, "artifacts"),
                        ignore=ignore)
        if os.path.exists(os.path.join(ROOT, ".doit.json")):
            shutil.copy2(os.path.join(ROOT, ".doit.json"), dest)
    return dest


def doit(cwd, *args, env=None, doubles=(), timeout=600):
    """Run the real doit command line; returns (exit code, stdout+stderr)."""
    e = dict(os.environ)
    e.update(env or {})
    e["PYTHONPATH"] = os.pathsep.join(list(doubles) + [e.get("PYTHONPATH", "")]).strip(os.pathsep)
    proc = subprocess.run([sys.executable, "-m", "doit"] + list(args), cwd=cwd, env=e,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout)
    return proc.returncode, proc.stdout


def executed(output):
    """Task names doit executed ('.  name') in an output."""
    return [l[3:].strip() for l in output.splitlines() if l.startswith(".  ")]


def assert_one_sentence_error(code, output, *needles):
    assert code != 0, output
    assert "Traceback" not in output, output
    errors = [l for l in output.splitlines() if l.startswith("error")]
    assert errors, output
    for n in needles:
        assert n in output, output


@pytest.fixture(scope="session")
def built_project(tmp_path_factory):
    """A project copy on which the host chain (checkout, golden, onnx) has run once."""
    if not HAS_HOST:
        pytest.skip("needs torch and transformers")
    dest = copy_project(str(tmp_path_factory.mktemp("project")), with_artifacts=False)
    code, out = doit(dest)
    assert code == 0, out
    return dest


@pytest.fixture
def project(built_project, tmp_path):
    """A private copy of the built project (artifacts and doit state included) to mutate."""
    dest = str(tmp_path / "p")
    shutil.copytree(built_project, dest)
    return dest


def sized_onnx_project(size):
    """In the cwd: artifacts/onnx/model.onnx of `size` bytes (sparse) and the sidecar that names
    its sha256, as the onnx link leaves them; returns the project's Layout."""
    import json

    from stages.common.files import sha256_file
    from stages.common.layout import Layout
    os.makedirs(os.path.join("artifacts", "onnx"))
    path = os.path.join("artifacts", "onnx", "model.onnx")
    with open(path, "wb") as f:
        f.truncate(size)
    with open(os.path.join("artifacts", "onnx", "model.json"), "w") as f:
        json.dump({"onnx_sha256": sha256_file(path)}, f)
    return Layout({"artifacts": "artifacts", "golden": {"images": []}})


def edit_yaml(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, old
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def rewrite_onnx_with_layernorm(project):
    """Replace the project's model.onnx by an opset-17 graph with LayerNormalization (what
    TensorRT 8.2 cannot parse), keeping its sidecar consistent."""
    import hashlib
    import json
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 256, 256])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 256, 256])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [256], [1.0] * 256)
    node = helper.make_node("LayerNormalization", ["pixel_values", "s"], ["logits"], axis=-1,
                            name="ln_0")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [scale]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    data = model.SerializeToString()
    onnx_dir = os.path.join(project, "artifacts", "onnx")
    with open(os.path.join(onnx_dir, "model.onnx"), "wb") as f:
        f.write(data)
    with open(os.path.join(onnx_dir, "model.json")) as f:
        meta = json.load(f)
    meta["onnx_sha256"] = hashlib.sha256(data).hexdigest()
    with open(os.path.join(onnx_dir, "model.json"), "w") as f:
        json.dump(meta, f)


def huge_png(path):
    """A valid PNG header claiming 20000x20000 (never decoded: refused on its size)."""
    from PIL import Image
    Image.new("L", (1, 1)).save(path)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    ihdr = struct.pack(">II", 20000, 20000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.fixture(autouse=True)
def _no_owned_folders_left_by_another_test():
    """runtime.files keeps the folders this process may write in (set by a doit run's
    prepare_artifacts); a test that ran one in-process must not confine the next test's tmp
    folders to its project."""
    from runtime import files
    files._OWNED[:], files._CONFINED[:] = [], []
    yield
    files._OWNED[:], files._CONFINED[:] = [], []


def use_trt_doubles(monkeypatch, request, api):
    """Import `tensorrt` and `pycuda` from the test doubles for this test (TensorRT generation
    `api`: "8.2", "10", ...), with a fresh device fingerprint; returns the tensorrt double."""
    from runtime import device as runtime_device

    def drop():
        for name in list(sys.modules):
            if name.split(".")[0] in ("tensorrt", "pycuda"):
                del sys.modules[name]
    monkeypatch.setenv("TRT_DOUBLE_API", api)
    monkeypatch.setattr(sys, "path", [TRT_DOUBLE, PYCUDA_DOUBLE] + sys.path)
    monkeypatch.setattr(runtime_device, "_CACHE", {})
    drop()
    request.addfinalizer(drop)
    import tensorrt as trt
    assert getattr(trt, "__double__", False)
    return trt
