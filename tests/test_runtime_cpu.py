"""CPU reference ops against Pillow, torch and the golden files; the ONNX Runtime backend end to
end; the TensorRT backend's logic through the doubles (both API generations)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import PYCUDA_DOUBLE, TRT_DOUBLE, ROOT
from runtime import reference


def test_resize_is_bit_exact_with_this_pillow():
    import PIL
    order = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal_first"
    rng = np.random.RandomState(0)
    for _ in range(60):
        h, w, oh, ow = [int(v) for v in rng.randint(1, 700, 4)]
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        want = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR))
        assert np.array_equal(reference.resize_fixed_point(img, oh, ow, order), want), (
            h, w, oh, ow)


def test_cv2_inter_linear_is_not_the_model_resize():
    import cv2
    img = np.asarray(Image.open(os.path.join(ROOT, "examples", "street_1920x1080.jpg")))
    pil = np.asarray(Image.fromarray(img).resize((256, 256), Image.BILINEAR)).astype(int)
    cv = cv2.resize(img, (256, 256), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(pil - cv).max() > 20  # why the runtime reproduces Pillow instead


@pytest.mark.host
def test_upsample_argmax_matches_torch_reference_order():
    import torch
    logits = np.random.RandomState(1).randn(1, 35, 64, 64).astype(np.float32)
    for h, w in ((1080, 1920), (479, 641), (1, 1), (40, 30)):
        want = torch.nn.functional.interpolate(torch.from_numpy(logits), size=(h, w),
                                               mode="bilinear",
                                               align_corners=False).argmax(1)[0].numpy()
        assert np.mean(reference.upsample_argmax(logits, h, w) == want) >= 0.9999


def test_blend():
    img = np.full((2, 2, 3), 100, np.uint8)
    table = np.array([[0, 0, 0], [200, 100, 0]], np.uint8)
    out = reference.blend(img, np.array([[0, 1], [1, 0]], np.uint8), table, 0.5)
    assert out[0, 1].tolist() == [150, 100, 50] and out[0, 0].tolist() == [50, 50, 50]


def golden_records(built_project):
    with open(os.path.join(built_project, "artifacts", "golden", "golden.json")) as f:
        return [dict(r, dir=os.path.join(built_project, r["dir"]),
                     source=os.path.join(built_project, r["source"]))
                for r in json.load(f)["images"]]


def test_cpu_reference_ops_reproduce_the_golden_files(built_project):
    from runtime.images import read_image
    from runtime.golden import load_case
    with open(os.path.join(built_project, "artifacts", "onnx", "model.json")) as f:
        pre = json.load(f)["preprocess"]
    for rec in golden_records(built_project):
        tensor, logits, mask = load_case(rec)
        ours = reference.preprocess(read_image(rec["source"]), 256, 256, pre["mean"], pre["std"],
                                    pre["scale"], pre["pass_order"])
        assert np.abs(ours - tensor).max() <= 1e-5
        assert np.mean(reference.upsample_argmax(logits, rec["height"], rec["width"])
                       == mask) >= 0.9999


def test_onnxruntime_segmenter_end_to_end(built_project):
    from runtime.images import read_image
    from runtime.segmenter import Segmenter, backend_for_path
    from runtime.golden import load_case
    seg = Segmenter(backend_for_path(os.path.join(built_project, "artifacts", "onnx",
                                                  "model.onnx")), keep_logits=True)
    for rec in golden_records(built_project):
        result = seg.segment(read_image(rec["source"]), overlay_alpha=0.5)
        assert result.mask.shape == (rec["height"], rec["width"]) and result.mask.dtype == np.uint8
        assert np.mean(result.mask == load_case(rec)[2]) >= 0.999
        assert set(result.timings) == {"preprocess", "infer", "postprocess"}
        assert (result.overlay.shape == (rec["height"], rec["width"], 3)
                and result.logits.shape == (1, 35, 64, 64))


def test_backend_checks_its_input(built_project):
    from runtime.errors import EngineError
    from runtime.segmenter import backend_for_path
    backend = backend_for_path(os.path.join(built_project, "artifacts", "onnx", "model.onnx"))
    with pytest.raises(EngineError) as e:
        backend.infer(np.zeros((1, 3, 100, 100), np.float32))
    assert "takes a 1x3x256x256 tensor" in str(e.value)


@pytest.mark.parametrize("api,expect_api", [("8.2", "bindings"), ("10", "tensor")])
def test_tensorrt_backend_on_both_apis_through_the_doubles(project, api, expect_api):
    import subprocess
    import sys
    script = ("import sys; sys.path.insert(0, '.')\nfrom stages.common.config import load\n"
              "from stages.common.layout import Layout\nfrom stages.device import engine\n"
              "from stages.common import files\nfrom stages.device.select import open_runtime\n"
              "from runtime.images import read_image\nfrom runtime.golden import load_case\n"
              "L = Layout(load())\nengine.run_build(load(), L)\nseg = open_runtime(L, 'tensorrt')\n"
              "rec = files.read_json(L.golden_json)['images'][1]\n"
              "m = seg.segment(read_image(rec['source'])).mask\n"
              "print('RESULT', (m == load_case(rec)[2]).mean(), seg.backend.describe()['api'])\n")
    env = dict(os.environ, TRT_DOUBLE_API=api,
               PYTHONPATH=os.pathsep.join([TRT_DOUBLE, PYCUDA_DOUBLE]))
    out = subprocess.run([sys.executable, "-c", script], cwd=project, env=env,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True).stdout
    assert "RESULT" in out, out
    agree, api_name = out.split("RESULT")[1].split()[:2]
    assert float(agree) >= 0.999 and api_name == expect_api


def test_segmenter_from_path_and_overlay(built_project):
    from runtime.images import read_image
    from runtime.segmenter import Segmenter
    seg = Segmenter.from_path(os.path.join(built_project, "artifacts", "onnx", "model.onnx"),
                              backend="onnxruntime")
    image = read_image(os.path.join(built_project, "examples", "odd_641x479.jpg"))
    result = seg.segment(image)
    picture = seg.overlay(image, result.mask, 0.5)
    assert (seg.pre_post == "cpu" and picture.shape == image.shape
            and not np.array_equal(picture, image))
