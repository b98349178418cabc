"""doit evaluate end to end on a built project copy: the shipped set (CI), the fp32 mIoU against an
independent computation on a set with a large real photo, a bad set on the command line, and the
device's run beside the host's report with a planted engine drop failing the gate."""
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_sentence_error, doit

pytestmark = pytest.mark.host
CAR, ROAD, SKY, BUILDING = 10, 1, 30, 18


def report(project):
    with open(os.path.join(project, "artifacts", "evaluate", "report.json")) as f:
        return json.load(f)


def test_the_shipped_set_runs_with_every_host_variant(project):
    code, out = doit(project, "evaluate")
    assert code == 0, out
    r = report(project)
    assert r["data"] == os.path.join("datasets", "sidewalk-demo") and r["image_count"] == 6
    assert sorted(r["variants"]) == ["fp16-preview", "fp32", "reference"]
    assert r["baseline"] == "reference" and r["passed"] is True
    ref = r["variants"]["reference"]
    assert 0.5 < ref["mIoU"] < 1 and 0.9 < ref["aAcc"] <= 1  # the demo model on its own scenes
    assert abs(r["variants"]["fp32"]["change"]["mIoU"]) < 0.002
    folder = os.path.join(project, "artifacts", "evaluate")
    for v in r["variants"].values():
        names = [v["pictures"]["iou"]] + v["pictures"]["worst"]
        assert len(v["pictures"]["worst"]) == 3
        for name in names:
            with Image.open(os.path.join(folder, name)) as im:
                assert im.size[0] >= 600
    assert os.path.isfile(os.path.join(folder, "confusion_reference.png"))
    assert "evaluate: 6 images in datasets/sidewalk-demo" in out and "\r" not in out
    assert "passed: every variant within evaluate.max_miou_drop" in out
    code, out = doit(project, "bundle")  # the device gets the set and the host's numbers
    assert code == 0, out
    path = os.path.join(project, "artifacts", "bundle", "segformer-device-bundle.tar.gz")
    with tarfile.open(path) as tar:
        names = set(n[len("segformer-trt/"):] for n in tar.getnames())
    for need in ("datasets/sidewalk-demo/labels/scene_05.png", "artifacts/evaluate/report.json"):
        assert need in names, need


def test_the_engine_is_a_variant_where_one_is_built(project):
    """Through the TensorRT and pycuda test doubles (ONNX Runtime inside, not TensorRT): the
    device-side path of the engine variant, next to the host's variants."""
    from conftest import PYCUDA_DOUBLE, TRT_DOUBLE
    env = {"TRT_DOUBLE_API": "8.2"}
    code, out = doit(project, "build_engine", env=env, doubles=(TRT_DOUBLE, PYCUDA_DOUBLE))
    assert code == 0, out
    code, out = doit(project, "evaluate", env=env, doubles=(TRT_DOUBLE, PYCUDA_DOUBLE))
    assert code == 0, out
    engine = report(project)["variants"]["engine"]
    assert engine["title"].startswith("engine fp16, TensorRT 8.2.1.8, double-gpu_sm53")
    assert abs(engine["change"]["mIoU"]) < 0.002
    assert "  engine        host " in out


def street_label(shape):
    """A hand-made label of the 1920x1080 street photo: sky, buildings, road, an ignored region
    and a region labelled as a car (whatever the model sees there)."""
    h, w = shape
    label = np.full((h, w), BUILDING, np.uint8)
    label[:h // 4] = SKY
    label[2 * h // 3:] = ROAD
    label[h // 3:h // 2, w // 8:w // 3] = 255
    label[h // 2:5 * h // 6, w // 2:3 * w // 4] = CAR
    return label


def independent_miou(model_dir, pairs):
    """transformers + torch interpolate + argmax, and IoU by a plain per-class loop."""
    import torch
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor
    model = SegformerForSemanticSegmentation.from_pretrained(model_dir).eval()
    processor = SegformerImageProcessor.from_pretrained(model_dir)
    inter, union = {}, {}
    for image_path, label in pairs:
        rgb = Image.open(image_path).convert("RGB")
        with torch.no_grad():
            logits = model(**processor(images=rgb, return_tensors="pt")).logits
        up = torch.nn.functional.interpolate(logits, size=label.shape, mode="bilinear",
                                             align_corners=False)
        pred = up.argmax(dim=1)[0].numpy()
        kept = label != 255
        for c in set(np.unique(pred[kept])) | set(np.unique(label[kept])):
            p, g = (pred == c) & kept, (label == c) & kept
            inter[c] = inter.get(c, 0) + int(np.sum(p & g))
            union[c] = union.get(c, 0) + int(np.sum(p | g))
    return float(np.mean([inter[c] / float(union[c]) for c in union if union[c]]))


def test_fp32_miou_equals_an_independent_computation_on_a_large_photo(project):
    data = os.path.join(project, "labelled")
    shutil.copytree(os.path.join(project, "datasets", "sidewalk-demo"), data)
    photo = os.path.join(data, "images", "street.jpg")
    shutil.copy(os.path.join(ROOT, "examples", "street_1920x1080.jpg"), photo)
    label = street_label((1080, 1920))
    Image.fromarray(label, "L").save(os.path.join(data, "labels", "street.png"))
    code, out = doit(project, "evaluate", "data=labelled", "labels=indices")
    assert code == 0, out
    r = report(project)
    assert r["image_count"] == 7
    pairs = [(photo, label)] + [
        (os.path.join(data, "images", s + ".jpg"),
         np.array(Image.open(os.path.join(data, "labels", s + ".png"))))
        for s in ("scene_%02d" % k for k in range(6))]
    expected = independent_miou(os.path.join(ROOT, "models", "segformer-tiny-sidewalk"), pairs)
    assert r["variants"]["fp32"]["mIoU"] == pytest.approx(expected, abs=0.002)
    assert r["variants"]["reference"]["mIoU"] == pytest.approx(expected, abs=1e-6)
    street = [row for row in r["variants"]["fp32"]["images"] if row["image"].endswith("street.jpg")]
    assert street[0]["pixels"] == 1920 * 1080 - (1080 // 2 - 1080 // 3) * (1920 // 3 - 1920 // 8)


def test_a_bad_set_on_the_command_line_is_one_sentence(project):
    data = os.path.join(project, "bad")
    shutil.copytree(os.path.join(project, "datasets", "sidewalk-demo"), data)
    os.remove(os.path.join(data, "labels", "scene_03.png"))
    code, out = doit(project, "evaluate", "data=bad")
    assert_one_sentence_error(code, out, "bad/images/scene_03.jpg has no label")
    assert not os.path.exists(os.path.join(project, "artifacts", "evaluate", "report.json"))


def test_data_on_the_command_line_is_relative_to_the_folder_doit_runs_in(project):
    """issue 24: data= like image=, out= and config=: resolved in the folder doit was started in
    (here datasets/, with `doit -k`), and the set's files named as typed there."""
    sub = os.path.join(project, "datasets")
    data = os.path.join(sub, "bad")
    shutil.copytree(os.path.join(sub, "sidewalk-demo"), data)
    os.remove(os.path.join(data, "labels", "scene_03.png"))
    code, out = doit(sub, "-k", "evaluate", "data=bad")
    assert_one_sentence_error(code, out, "Image bad/images/scene_03.jpg has no label in bad/labels")
    code, out = doit(sub, "-k", "evaluate", "data=none")
    assert_one_sentence_error(code, out, "The labelled set none (evaluate.data")


def test_the_device_keeps_the_host_numbers_and_fails_on_a_planted_engine_drop(
        project, monkeypatch, capsys):
    from runtime.errors import ToleranceError
    from stages.common.config import load
    from stages.common.layout import Layout
    from stages.device import evaluate
    monkeypatch.chdir(project)
    cfg = load("pipeline.yaml")
    layout = Layout(cfg)
    evaluate.run_evaluate(cfg, layout, "stages.host.evaluate_host:host_variants")
    host = report(project)
    folder = os.path.join(project, "artifacts", "evaluate")
    for rel in host["variants"]["reference"]["pictures"]["worst"]:
        os.remove(os.path.join(folder, rel))  # as from a bundle, which carries no pictures
    real = evaluate.device_variants

    def with_planted_engine(layout, meta, here="device"):
        fp32 = real(layout, meta, here)[0]
        planted = evaluate.Variant("engine", "planted: cars become road", "device",
                                   lambda image: np.where(fp32.mask(image) == CAR, ROAD,
                                                          fp32.mask(image)).astype(np.uint8))
        return [fp32, planted]
    monkeypatch.setattr(evaluate, "device_variants", with_planted_engine)
    with pytest.raises(ToleranceError) as e:
        evaluate.run_evaluate(cfg, layout, None)  # as on the device: no host variants here
    message = str(e.value)
    assert message.startswith("evaluate: variant engine loses") and "vehicle-car" in message
    assert "more than evaluate.max_miou_drop 0.01" in message
    r = report(project)
    assert sorted(r["variants"]) == ["engine", "fp16-preview", "fp32", "reference"]
    assert r["variants"]["reference"]["mIoU"] == host["variants"]["reference"]["mIoU"]
    assert "carried_from" in r["variants"]["reference"]
    assert r["variants"]["engine"]["change"]["iou"]["vehicle-car"] < -0.5
    assert r["variants"]["reference"]["pictures"]["worst"] == []
    kept = r["variants"]["fp16-preview"]["pictures"]["worst"]
    assert len(kept) == 3 and all(os.path.isfile(os.path.join(folder, rel)) for rel in kept)
    table = capsys.readouterr().out
    assert "reference     earlier run" in table and "engine        device" in table


def test_a_mixed_model_left_from_an_fp16_run_is_not_previewed(project):
    """engine.precision: fp32 after an fp16 run: the old model.mixed.onnx stays on disk, and
    evaluate must not report it as this engine's fp16 preview; a mixed model made from another
    model.onnx is not this model's either."""
    from stages.common.layout import Layout
    from stages.host.evaluate_host import has_current_mixed_model
    layout = Layout({"artifacts": os.path.join(project, "artifacts"), "golden": {"images": []}})
    assert has_current_mixed_model(layout)  # the fp16 run of the project fixture
    pipeline = os.path.join(project, "pipeline.yaml")
    with open(pipeline) as f:
        text = f.read()
    assert "precision: fp16" in text
    with open(pipeline, "w") as f:
        f.write(text.replace("precision: fp16", "precision: fp32", 1))
    code, out = doit(project, "evaluate")
    assert code == 0, out
    assert os.path.isfile(layout.precision_model)  # still there, but not this engine's
    assert sorted(report(project)["variants"]) == ["fp32", "reference"]
    with open(layout.precision_report) as f:
        rec = json.load(f)
    rec["onnx_sha256"] = "0" * 64
    with open(layout.precision_report, "w") as f:
        json.dump(rec, f)
    assert not has_current_mixed_model(layout)
