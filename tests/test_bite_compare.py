"""verify and the ONNX parity check on crafted golden cases: each case breaks exactly one limit
(input max, logits max, logits mean, mask agreement, mIoU) on one image that is neither the
first nor the last, and the check must fail naming that image; at the limit itself it passes."""

import json
import os
import sys
import types

import numpy as np
import pytest

from runtime import palette as pal
from runtime.reference import upsample_argmax
from stages.common import compare
from stages.common.errors import ToleranceError
from stages.common.layout import Layout

H = W = 100  # image size
C = 4  # classes
LABELS = ["road", "sidewalk", "car", "pole"]
FP32 = {
    "input_max_abs": 1e-3,
    "logits_max_abs": 1e-3,
    "logits_mean_abs": 1e-4,
    "mask_agreement": 0.999,
    "miou": 0.99,
}
FP16 = {
    "input_max_abs": 1e-3,
    "logits_max_abs": 0.05,
    "logits_mean_abs": 0.005,
    "mask_agreement": 0.995,
    "miou": 0.89,
}


def golden_mask():
    """Three large regions and a 5-pixel class 3 (the small class mIoU must not lose)."""
    m = np.zeros((H, W), np.uint8)
    m[:, 34:67] = 1
    m[:, 67:] = 2
    m[0, :5] = 3
    return m


def hashed(case, record):
    """The record with the sha256 of its case files (golden.json records them)."""
    import hashlib

    record["sha256"] = dict(
        (n, hashlib.sha256(open(str(case / n), "rb").read()).hexdigest())
        for n in ("input.npy", "logits.npy", "mask.png")
    )
    return record


def make_golden(tmp_path, n=3):
    """n golden cases on disk (input.npy, logits.npy, mask.png, an image) and golden.json."""
    import cv2

    rng = np.random.RandomState(0)
    records = []
    for i in range(n):
        case = tmp_path / ("golden/%02d_img" % i)
        case.mkdir(parents=True)
        np.save(str(case / "input.npy"), rng.rand(1, 3, 8, 8).astype(np.float32))
        np.save(str(case / "logits.npy"), rng.rand(1, C, 8, 8).astype(np.float32))
        with open(str(case / "mask.png"), "wb") as f:
            f.write(pal.encode_mask_png(golden_mask(), pal.palette_rgb(C)))
        image = str(tmp_path / ("img%d.png" % i))
        cv2.imwrite(image, np.full((H, W, 3), 60 * i, np.uint8))
        records.append(hashed(case, {"source": image, "dir": str(case), "height": H, "width": W}))
    with open(str(tmp_path / "golden" / "golden.json"), "w") as f:
        json.dump({"images": records}, f)
    return records


class FakeBackend(object):
    source, input_shape, output_shape = "crafted.onnx", (1, 3, 8, 8), (1, C, 8, 8)

    def __init__(self, precision, logits_delta):
        self.precision, self.logits_delta = precision, logits_delta

    def infer(self, tensor):
        golden = self.logits_delta["golden"][tensor.tobytes()]
        return golden + self.logits_delta.get(tensor.tobytes(), 0)

    def describe(self):
        return {"backend": "fake", "model": "crafted"}


class FakeSegmenter(object):
    """A runtime whose three layers differ from the golden files exactly as told, per image."""

    def __init__(
        self,
        records,
        precision="fp32",
        bad_index=None,
        input_delta=0.0,
        logits_delta=0.0,
        mask=None,
    ):
        from runtime.golden import load_case

        self.labels, self.palette, self.pre_post = LABELS, pal.palette_rgb(C), "cpu"
        self.inputs, self.masks, deltas = {}, {}, {"golden": {}}
        for i, rec in enumerate(records):
            tensor, logits, gmask = load_case(rec)
            bad = i == bad_index
            self.inputs[rec["source"]] = tensor + (input_delta if bad else 0)
            deltas["golden"][tensor.tobytes()] = logits
            if bad:
                deltas[tensor.tobytes()] = logits_delta
            self.masks[rec["source"]] = mask if bad and mask is not None else gmask
        self.backend = FakeBackend(precision, deltas)
        self.current = None

    def preprocess(self, image):
        self.current = next(s for s in self.inputs if int(image[0, 0, 0]) == 60 * int(s[-5]))
        return self.inputs[self.current]

    def segment(self, image):
        source = next(s for s in self.masks if int(image[0, 0, 0]) == 60 * int(s[-5]))
        return types.SimpleNamespace(mask=self.masks[source])


def run_verify(tmp_path, monkeypatch, seg, limits=None, precision_limits=None):
    from stages.device import select, verify

    records_cfg = {"artifacts": str(tmp_path), "golden": {"images": ["a", "b", "c"]}}
    layout = Layout(records_cfg)
    cfg = {"verify": {"fp32": dict(limits or FP32), "fp16": dict(precision_limits or FP16)}}

    def open_runtime(given_layout, backend):
        assert given_layout is layout and backend == "auto"
        return seg

    monkeypatch.setattr(select, "open_runtime", open_runtime)
    verify.run_verify(cfg, layout, "auto")
    with open(os.path.join(layout.verify_dir, "report.json")) as f:
        return json.load(f)


def delta_one(value, shape):
    d = np.zeros(shape, np.float32)
    d.flat[7] = value
    return d


def moved_pixels(k):
    """The golden mask with k pixels of class 0 moved to class 1 (agreement 1 - k/10000)."""
    m = golden_mask()
    m[50, 0:k] = 1
    return m


def small_class_lost():
    """The 5 pixels of class 3 become class 0: agreement 0.9995, but class 3's IoU is 0."""
    m = golden_mask()
    m[0, :5] = 0
    return m


# (name, key that must fail, FakeSegmenter keyword arguments): each breaks exactly one limit
ONE_LIMIT = [
    ("input max", "input_max_abs", {"input_delta": delta_one(2e-3, (1, 3, 8, 8))}),
    ("logits max", "logits_max_abs", {"logits_delta": delta_one(2e-3, (1, C, 8, 8))}),
    ("logits mean", "logits_mean_abs", {"logits_delta": np.full((1, C, 8, 8), 5e-4, np.float32)}),
    ("agreement", "mask_agreement", {"mask": moved_pixels(20)}),
    ("miou", "miou", {"mask": small_class_lost()}),
]


@pytest.mark.parametrize("name,key,kwargs", ONE_LIMIT, ids=[c[0] for c in ONE_LIMIT])
def test_verify_fails_on_the_one_broken_limit_of_the_middle_image(
    tmp_path, monkeypatch, name, key, kwargs
):
    records = make_golden(tmp_path)
    seg = FakeSegmenter(records, bad_index=1, **kwargs)
    with pytest.raises(ToleranceError) as e:
        run_verify(tmp_path, monkeypatch, seg)
    assert records[1]["source"] in str(e.value) and key in str(e.value)
    with open(str(tmp_path / "verify" / "report.json")) as f:
        report = json.load(f)
    assert not report["passed"]
    failing = [[f.split(":")[1].split()[0] for f in r["failures"]] for r in report["images"]]
    assert failing == [[], [key], []]
    pictures = [os.path.join(str(tmp_path), "verify", "%02d_img%d.jpg" % (i, i)) for i in range(3)]
    assert [r["picture"] for r in report["images"]] == pictures
    assert all(open(p, "rb").read(2) == b"\xff\xd8" for p in pictures)  # JPEG files


def test_verify_metrics_of_the_crafted_cases_have_their_exact_values(tmp_path, monkeypatch):
    records = make_golden(tmp_path)
    with pytest.raises(ToleranceError):
        run_verify(
            tmp_path, monkeypatch, FakeSegmenter(records, bad_index=1, mask=moved_pixels(20))
        )
    with open(str(tmp_path / "verify" / "report.json")) as f:
        row = json.load(f)["images"][1]
    assert row["mask_agreement"] == pytest.approx(0.998)
    n0 = int(np.count_nonzero(golden_mask() == 0))
    n1 = int(np.count_nonzero(golden_mask() == 1))
    ious = [(n0 - 20.0) / n0, n1 / (n1 + 20.0), 1.0, 1.0]
    assert row["miou"] == pytest.approx(np.mean(ious))
    assert row["iou"] == pytest.approx(dict(zip(LABELS, ious)))


def test_verify_passes_at_each_limit_exactly(tmp_path, monkeypatch):
    records = make_golden(tmp_path)
    measured = {
        "input_max_abs": 2e-3,
        "logits_max_abs": 2e-3,
        "logits_mean_abs": 2e-3 / (C * 64),
        "mask_agreement": 0.998,
        "miou": None,
    }
    seg = FakeSegmenter(
        records,
        bad_index=1,
        input_delta=delta_one(2e-3, (1, 3, 8, 8)),
        logits_delta=delta_one(2e-3, (1, C, 8, 8)),
        mask=moved_pixels(20),
    )
    with pytest.raises(ToleranceError):
        run_verify(tmp_path, monkeypatch, seg)
    with open(str(tmp_path / "verify" / "report.json")) as f:
        row = json.load(f)["images"][1]
    measured["miou"] = row["miou"]
    for key, value in measured.items():
        assert row[key] == pytest.approx(value, rel=1e-4), key
    limits = dict((k, row[k]) for k in FP32)  # the measured values as the limits: all pass
    report = run_verify(tmp_path, monkeypatch, seg, limits=limits)
    assert report["passed"] and report["limits"] == limits


def test_verify_judges_an_fp32_backend_by_the_fp32_limits_and_fp16_by_fp16(tmp_path, monkeypatch):
    records = make_golden(tmp_path)
    delta = {"logits_delta": delta_one(0.01, (1, C, 8, 8))}  # within fp16's 0.05, not fp32's 1e-3
    with pytest.raises(ToleranceError) as e:
        run_verify(tmp_path, monkeypatch, FakeSegmenter(records, "fp32", bad_index=1, **delta))
    assert "verify.fp32" in str(e.value)
    report = run_verify(tmp_path, monkeypatch, FakeSegmenter(records, "fp16", bad_index=1, **delta))
    assert report["passed"] and report["precision"] == "fp16" and report["limits"] == FP16


def test_verify_refuses_a_model_of_another_shape_than_the_golden_files(tmp_path, monkeypatch):
    from stages.common.errors import ArtifactError

    records = make_golden(tmp_path)
    seg = FakeSegmenter(records)
    seg.backend.output_shape = (1, C + 1, 8, 8)
    with pytest.raises(ArtifactError) as e:
        run_verify(tmp_path, monkeypatch, seg)
    assert (
        "(1x3x8x8 -> 1x%dx8x8) and crafted.onnx (1x3x8x8 -> 1x%dx8x8) come from different models"
        % (C, C + 1)
    ) in str(e.value) and records[0]["dir"] in str(e.value)


def test_verify_failure_lines_name_the_layer_value_and_limit():
    from stages.device.verify import failures

    row = {
        "input_max_abs": 0.0,
        "logits_max_abs": 0.5,
        "logits_mean_abs": 0.0,
        "mask_agreement": 0.5,
        "miou": 1.0,
    }
    out = failures(row, FP32)
    assert out == [
        "layer (b) backend logits on the golden input vs golden logits: logits_max_abs "
        "0.5 vs limit 0.001",
        "layer (c) end-to-end mask vs golden mask: mask_agreement 0.5 vs limit 0.999",
    ]


def test_abs_diff_max_is_the_largest_and_mean_the_average():
    a = np.zeros((1, 2, 2, 2), np.float32)
    b = a.copy()
    b[0, 1, 1, 0] = -0.8
    b[0, 0, 0, 1] = 0.2
    d = compare.abs_diff(a, b)
    assert d == {"max_abs": pytest.approx(0.8), "mean_abs": pytest.approx(1.0 / 8)}


def test_argmax_agreement_is_over_the_class_axis():
    golden = np.zeros((1, 3, 2, 4), np.float32)
    golden[0, 2] = 1.0  # class 2 wins everywhere
    logits = golden.copy()
    logits[0, 0, 1, 3] = 2.0  # one of 8 cells now picks class 0
    logits[0, 1, 0, :] = np.arange(4) * 0.1  # changes the width-axis argmax, not the class one
    assert compare.argmax_agreement(logits, golden) == pytest.approx(7.0 / 8)


def test_mask_metrics_names_classes_by_label_and_by_id_past_the_labels():
    golden = np.array([[0, 0, 1, 5, 2]], np.uint8)
    mask = np.array([[0, 1, 1, 5, 2]], np.uint8)
    m = compare.mask_metrics(mask, golden, ["a", "b"])
    assert m["iou"] == {"a": 0.5, "b": 0.5, "2": 1.0, "5": 1.0}
    assert m["mask_agreement"] == 0.8 and m["miou"] == pytest.approx(0.75)


def test_abs_diff_does_not_wrap_around_on_integer_inputs():
    d = compare.abs_diff(np.array([0, 200], np.uint8), np.array([1, 0], np.uint8))
    assert d == {"max_abs": 200.0, "mean_abs": 100.5}


# ---- ONNX parity (stages/host/onnx_export.parity) with a crafted ONNX Runtime ------------


def parity_logits():
    """Class 0 beats class 1 by 1e-4 everywhere; class 2 and 3 far below."""
    lg = np.zeros((1, C, 25, 25), np.float32)
    lg[0, 0], lg[0, 1], lg[0, 2], lg[0, 3] = 1.0, 1.0 - 1e-4, -5.0, -5.0
    return lg


def make_parity_golden(tmp_path, n=3):
    records = []
    for i in range(n):
        case = tmp_path / ("golden/%02d" % i)
        case.mkdir(parents=True)
        tensor = np.full((1, 3, 8, 8), float(i), np.float32)
        np.save(str(case / "input.npy"), tensor)
        np.save(str(case / "logits.npy"), parity_logits())
        with open(str(case / "mask.png"), "wb") as f:
            f.write(pal.encode_mask_png(upsample_argmax(parity_logits(), H, W), pal.palette_rgb(C)))
        records.append(
            hashed(case, {"source": "img%d.jpg" % i, "dir": str(case), "height": H, "width": W})
        )
    path = str(tmp_path / "golden" / "golden.json")
    with open(path, "w") as f:
        json.dump({"images": records}, f)
    return path


def fake_onnxruntime(monkeypatch, outputs):
    """onnxruntime whose session returns outputs[i] for golden input i."""

    class Session(object):
        def __init__(self, path, providers):
            assert path == "model.onnx" and providers == ["CPUExecutionProvider"]

        def run(self, names, feeds):
            assert names == ["logits"] and list(feeds) == ["pixel_values"]
            return [outputs[int(feeds["pixel_values"].flat[0])]]

    monkeypatch.setitem(sys.modules, "onnxruntime", types.SimpleNamespace(InferenceSession=Session))


def logits_with(change):
    lg = parity_logits()
    change(lg)
    return lg


def _lower_a_loser(lg):
    lg[0, 3, 4, 4] -= 0.01  # max abs 0.01, no argmax changes


def _flip_a_block(lg):
    lg[0, 1, 10:15, 10:15] += 2e-4  # max abs 2e-4, the block's pixels turn to class 1


PARITY_CASES = [("max_abs", _lower_a_loser), ("mask_agreement", _flip_a_block)]


@pytest.mark.parametrize("key,change", PARITY_CASES, ids=[c[0] for c in PARITY_CASES])
def test_parity_fails_on_the_one_broken_limit_of_the_middle_image(
    tmp_path, monkeypatch, key, change
):
    from stages.host.onnx_export import parity

    golden = make_parity_golden(tmp_path)
    outputs = [parity_logits(), logits_with(change), parity_logits()]
    fake_onnxruntime(monkeypatch, outputs)
    limits = {"max_abs": 1e-3, "mask_agreement": 0.999}
    with pytest.raises(ToleranceError) as e:
        parity("model.onnx", golden, limits, LABELS)
    assert "img1.jpg" in str(e.value) and "onnx." + key in str(e.value)


def test_parity_rows_carry_the_exact_metrics_and_pass_at_the_limits(tmp_path, monkeypatch):
    from stages.host.onnx_export import parity

    golden = make_parity_golden(tmp_path)
    outputs = [parity_logits(), logits_with(_flip_a_block), logits_with(_lower_a_loser)]
    fake_onnxruntime(monkeypatch, outputs)
    flipped = np.count_nonzero(upsample_argmax(outputs[1], H, W) == 1)
    assert flipped > 10
    agreement = 1.0 - flipped / float(H * W)
    loose = {"max_abs": 1.0, "mask_agreement": 0.5}
    rows = parity("model.onnx", golden, loose, LABELS)
    assert [r["image"] for r in rows] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert [r["mask_agreement"] for r in rows] == [1.0, pytest.approx(agreement), 1.0]
    assert [r["max_abs"] for r in rows] == [
        0.0,
        pytest.approx(2e-4, rel=1e-3),
        pytest.approx(0.01, rel=1e-3),
    ]
    assert [r["argmax_agreement"] for r in rows] == [1.0, 1.0 - 25.0 / 625, 1.0]
    limits = {"max_abs": rows[2]["max_abs"], "mask_agreement": rows[1]["mask_agreement"]}
    assert parity("model.onnx", golden, limits, LABELS) == rows  # at the limits: passes
    with pytest.raises(ToleranceError) as e:
        parity("model.onnx", golden, dict(limits, max_abs=0.0099), LABELS)
    assert "failed on img2.jpg" in str(e.value)
    with pytest.raises(ToleranceError) as e:
        parity("model.onnx", golden, dict(limits, mask_agreement=0.9999), LABELS)
    assert "mask agreement %.4f%% (limit onnx.mask_agreement 99.9900%%)" % (
        100 * rows[1]["mask_agreement"]
    ) in str(e.value)
