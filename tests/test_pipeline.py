"""The chain through the real doit command line: rerun only what changed, nothing when nothing
did."""
import json
import os
import subprocess
import sys
import time

from conftest import ROOT, copy_project, doit, edit_yaml, executed


def test_second_doit_runs_nothing_and_is_fast(project):
    t0 = time.time()
    code, out = doit(project)
    elapsed = time.time() - t0
    assert code == 0, out
    assert executed(out) == [], out
    assert "-- checkout" in out and "-- onnx" in out
    assert elapsed < 3.0  # includes starting Python; the target is < 1 s for doit itself


def test_doit_list_does_not_import_torch():
    code = ("import sys, runpy; sys.argv = ['doit', 'list']\ntry:\n"
            "    runpy.run_module('doit', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'onnx', 'onnxruntime', 'cv2', 'numpy') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True).stdout
    assert "HEAVY []" in out, out
    for task in ("checkout", "golden", "onnx", "build_engine", "runtime_check", "verify", "infer",
                 "bench", "bundle"):
        assert task in out


def test_editing_onnx_section_reruns_only_onnx(project):
    # A new parity limit reruns the onnx link; it exports the same model.onnx, so verify is skipped.
    edit_yaml(os.path.join(project, "pipeline.yaml"), "max_abs: 1.0e-3 ", "max_abs: 2.0e-3 ")
    code, out = doit(project)
    assert code == 0, out
    assert executed(out) == ["onnx"], out
    assert "-- verify" in out


def test_changing_opset_reruns_onnx_and_nothing_upstream(project):
    edit_yaml(os.path.join(project, "pipeline.yaml"), "opset: 13 ", "opset: 12 ")
    code, out = doit(project)
    assert code == 0, out
    assert "checkout" not in executed(out) and "golden" not in executed(out)
    assert "onnx" in executed(out)
    with open(os.path.join(project, "artifacts", "onnx", "report.json")) as f:
        assert json.load(f)["gate"]["opset"] == 12


def test_editing_golden_section_reruns_golden_and_downstream_only(project):
    edit_yaml(os.path.join(project, "pipeline.yaml"), "overlay_alpha: 0.5", "overlay_alpha: 0.6")
    code, out = doit(project)
    assert code == 0, out
    assert "checkout" not in executed(out) and executed(out)[0] == "golden", out


def test_touching_files_without_changing_them_reruns_nothing(project):
    for rel in ("models/segformer-tiny-sidewalk/model.safetensors", "examples/odd_641x479.jpg",
                "artifacts/onnx/model.onnx", "artifacts/checkout/manifest.json"):
        os.utime(os.path.join(project, rel), None)
    code, out = doit(project)
    assert code == 0, out
    assert executed(out) == [], out


def test_reclone_with_identical_files_reruns_only_checkout(project, tmp_path):
    import shutil
    src = os.path.join(project, "models", "segformer-tiny-sidewalk")
    shutil.copytree(src, str(tmp_path / "clone"))
    shutil.rmtree(src)
    shutil.copytree(str(tmp_path / "clone"), src)
    code, out = doit(project)
    assert code == 0, out
    assert executed(out) in ([], ["checkout"]), out


def test_config_var_selects_another_pipeline_file(project):
    other = os.path.join(project, "other.yaml")
    with open(os.path.join(project, "pipeline.yaml")) as f:
        text = f.read().replace("artifacts: artifacts ", "artifacts: artifacts/other ")
    with open(other, "w") as f:
        f.write(text)
    code, out = doit(project, "checkout", "config=other.yaml")
    assert code == 0, out
    assert os.path.isfile(os.path.join(project, "artifacts", "other", "checkout", "manifest.json"))


def test_golden_mask_is_argmax_of_upsampled_golden_logits(built_project):
    import numpy as np
    import torch
    from runtime.golden import load_case
    with open(os.path.join(built_project, "artifacts", "golden", "golden.json")) as f:
        golden = json.load(f)
    assert golden["processor"]["class"] == "SegformerImageProcessorPil"
    for rec in golden["images"]:
        rec = dict(rec, dir=os.path.join(built_project, rec["dir"]))
        tensor, logits, mask = load_case(rec)
        up = torch.nn.functional.interpolate(torch.from_numpy(logits),
                                             size=(rec["height"], rec["width"]),
                                             mode="bilinear", align_corners=False)
        assert np.array_equal(up.argmax(1)[0].numpy().astype(np.uint8), mask)
        assert len(np.unique(mask)) >= 5  # a meaningful street scene, not a constant mask


def test_plain_doit_on_a_fresh_clone_runs_the_host_chain(tmp_path):
    dest = copy_project(str(tmp_path), with_artifacts=False)
    code, out = doit(dest)
    assert code == 0, out
    assert executed(out) == ["checkout", "golden", "onnx", "precision", "verify"], out
    assert "build_engine" not in out
