"""Device-side compatibility: Python 3.6 (vermin), no torch on the device import path, and the
bundle."""
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT, doit, executed

DEVICE_MODULES = ["dodo.py", "runtime", "stages/__init__.py", "stages/common", "stages/device"]


def test_device_modules_pass_vermin_for_python_3_6():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        pytest.skip("vermin is not installed (pip install -r requirements-dev.txt)")
    proc = subprocess.run([vermin, "--target=3.6-", "--no-tips", "--violations"] + DEVICE_MODULES,
                          cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout


def test_device_import_path_never_imports_torch(built_project):
    code = ("import sys; sys.path.insert(0, '.')\n"
            "import stages.device.engine, stages.device.verify, stages.device.infer, "
            "stages.device.bench, stages.device.runtime_check, stages.device.select\n"
            "import runtime.segmenter, runtime.gpu_pipeline, runtime.backends.tensorrt_backend\n"
            "import runtime.backends.onnxruntime_backend\n"
            "from stages.common.config import load; from stages.common.layout import Layout; from "
            "stages.device.select import open_runtime\n"
            "seg = open_runtime(Layout(load()), 'onnxruntime')\n"
            "print('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=built_project, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True).stdout
    assert "HEAVY []" in out, out


def test_bundle_holds_exactly_what_the_device_needs(project):
    code, out = doit(project, "bundle")
    assert code == 0 and executed(out) == ["bundle"], out
    path = os.path.join(project, "artifacts", "bundle", "segformer-device-bundle.tar.gz")
    with tarfile.open(path) as tar:
        names = set(n[len("segformer-trt/"):] for n in tar.getnames())
        manifest = json.loads(tar.extractfile("segformer-trt/BUNDLE_MANIFEST.json").read().decode())
        onnx_bytes = tar.extractfile("segformer-trt/artifacts/onnx/model.onnx").read()
    for need in ("dodo.py", "pipeline.yaml", "requirements-device.txt", "stages/device/engine.py",
                 "runtime/segmenter.py",
                 "runtime/kernels/preprocess.cu", "artifacts/onnx/model.onnx",
                 "artifacts/onnx/model.json", "artifacts/onnx/model.mixed.onnx",
                 "artifacts/onnx/precision.json",
                 "artifacts/checkout/manifest.json", "artifacts/golden/golden.json",
                 "artifacts/golden/00_street_1920x1080/input.npy", "examples/odd_641x479.jpg",
                 "BUNDLE_MANIFEST.json"):
        assert need in names, need
    assert not [n for n in names if n.startswith(("models/", "tests/", ".venv", "stages/host/"))
                or n.endswith(".pyc")]
    import hashlib
    assert manifest["files"]["artifacts/onnx/model.onnx"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert set(manifest["files"]) == names - {"BUNDLE_MANIFEST.json"}
    assert executed(doit(project, "bundle")[1]) == []  # up to date
