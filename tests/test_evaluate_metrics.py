"""doit evaluate's parts without a model: the metric on hand-made label/prediction pairs with known
answers, the label layouts, every bad-dataset sentence, the gate on a planted drop, the progress
line."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from runtime import metrics
from stages.common import schema
from stages.device import evaluate_data as data
from stages.device.evaluate import Progress, fold_state

A = np.array


def score(label, pred, n):
    return metrics.scores(metrics.confusion(A(label, np.uint8), A(pred, np.uint8), n),
                          [str(c) for c in range(n)])


def ious(s):
    return [c["iou"] for c in s["classes"]]


def test_ignore_pixels_do_not_count():
    s = score([[0, 255], [1, 1]], [[0, 1], [1, 0]], 3)
    # kept pixels: (0,0) (1,1) (1,0): class 0 inter 1 union 2, class 1 inter 1 union 2
    assert ious(s) == [0.5, 0.5, None]
    assert s["mIoU"] == 0.5 and s["aAcc"] == pytest.approx(2 / 3)
    assert [c["acc"] for c in s["classes"]] == [1.0, 0.5, None]
    assert s["mAcc"] == 0.75 and s["pixels"] == 3


def test_a_class_only_in_the_prediction_counts_with_iou_zero():
    s = score([[0, 0], [0, 0]], [[0, 2], [0, 0]], 3)
    assert ious(s) == [0.75, None, 0.0]
    assert s["mIoU"] == pytest.approx(0.375)
    assert s["classes"][2]["acc"] is None and s["mAcc"] == 0.75  # no label pixels: no accuracy


def test_absent_classes_are_left_out_of_the_mean():
    s = score([[1, 1, 4]], [[1, 1, 4]], 6)
    assert ious(s) == [None, 1.0, None, None, 1.0, None]
    assert s["mIoU"] == 1.0 and s["aAcc"] == 1.0


def test_one_pixel_images():
    assert score([[2]], [[2]], 3)["mIoU"] == 1.0
    wrong = score([[2]], [[1]], 3)
    assert ious(wrong) == [None, 0.0, 0.0] and wrong["mIoU"] == 0.0 and wrong["aAcc"] == 0.0
    nothing = score([[255]], [[1]], 3)
    assert nothing["mIoU"] is None and nothing["aAcc"] is None and nothing["pixels"] == 0


def test_areas_are_summed_over_the_set_before_dividing():
    """mmsegmentation sums intersections and unions over the images; a mean of per-image IoUs
    would give (1 + 0.1) / 2 for class 1 here instead of 10 / 19."""
    one = metrics.confusion(A([[1]], np.uint8), A([[1]], np.uint8), 2)
    big_label = np.ones((1, 18), np.uint8)
    big_pred = np.zeros((1, 18), np.uint8)
    big_pred[0, :9] = 1
    two = metrics.confusion(big_label, big_pred, 2)
    s = metrics.scores(one + two, ["a", "b"])
    assert s["classes"][1]["iou"] == pytest.approx(10 / 19)
    assert s["classes"][0]["iou"] == 0.0 and s["mIoU"] == pytest.approx(5 / 19)
    assert s["aAcc"] == pytest.approx(10 / 19)


def test_matches_mmsegmentations_histogram_formulas_on_random_maps():
    rng = np.random.default_rng(3)
    n = 7
    total = np.zeros((n, n), np.int64)
    inter, union, lab_area = np.zeros(n), np.zeros(n), np.zeros(n)
    for _ in range(4):
        label = rng.integers(0, n, (23, 31)).astype(np.uint8)
        label[rng.random(label.shape) < 0.2] = 255
        pred = rng.integers(0, n - 1, (23, 31)).astype(np.uint8)
        total += metrics.confusion(label, pred, n)
        keep = label != 255
        p, l = pred[keep], label[keep]
        i = np.histogram(p[p == l], bins=n, range=(0, n - 1))[0]
        ap, al = np.histogram(p, bins=n, range=(0, n - 1))[0], np.histogram(l, bins=n,
                                                                              range=(0, n - 1))[0]
        inter, union, lab_area = inter + i, union + ap + al - i, lab_area + al
    s = metrics.scores(total, [str(c) for c in range(n)])
    assert s["mIoU"] == pytest.approx(np.nanmean(inter / union))
    assert s["aAcc"] == pytest.approx(inter.sum() / lab_area.sum())


def _two(base_ious, other_ious):
    names = ["road", "car", "sky"]

    def result(values):
        defined = [v for v in values if v is not None]
        return {"mIoU": sum(defined) / len(defined), "classes": [
            {"name": n, "iou": v} for n, v in zip(names, values)]}
    return {"reference": result(base_ious), "engine": result(other_ious)}


def test_the_gate_fails_on_a_planted_miou_drop_naming_variant_class_and_numbers():
    variants = _two([0.9, 0.8, 0.95], [0.9, 0.5, 0.95])
    fails = metrics.gate(variants, "reference", 0.05)
    assert [f[0] for f in fails] == ["engine"]
    sentence = fails[0][1]
    assert "engine" in sentence and "0.1000 mIoU" in sentence and "0.8833 -> 0.7833" in sentence
    assert "car (IoU 0.8000 -> 0.5000)" in sentence and "max_miou_drop 0.05" in sentence
    assert metrics.gate(variants, "reference", 0.2) == []


def test_the_per_class_gate_catches_a_class_the_mean_hides():
    variants = _two([0.9, 0.8, 0.95], [0.95, 0.7, 0.99])
    assert metrics.gate(variants, "reference", 0.01) == []
    fails = metrics.gate(variants, "reference", 0.01, max_class_iou_drop=0.05)
    assert "class car" in fails[0][1] and "0.8000 -> 0.7000" in fails[0][1]


def test_changes_against_the_baseline():
    base = score([[0, 1]], [[0, 1]], 2)
    worse = score([[0, 1]], [[0, 0]], 2)
    ch = metrics.changes(worse, base)
    assert ch["mIoU"] == pytest.approx(-0.75) and ch["iou"] == {"0": -0.5, "1": -1.0}


# ---- the labelled set ----

def make_set(root, images=("a", "b"), labels=None, size=(8, 6), value=1, mode="L", ext=".png"):
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    for stem in images:
        Image.new("RGB", size, (90, 90, 90)).save(os.path.join(root, "images", stem + ".jpg"))
    for stem in (images if labels is None else labels):
        img = Image.new(mode, size, value)
        if mode == "P":
            img.putpalette([255 - (i % 256) for i in range(768)])
        img.save(os.path.join(root, "labels", stem + ext))
    return root


def check(root, layout="auto", num_labels=35):
    chosen, pairs = data.find_pairs(root, layout)
    data.check_all(pairs, chosen, num_labels)
    return chosen, pairs


@pytest.mark.parametrize("case,needle", [
    ("missing", "Image {r}/images/b.jpg has no label in {r}/labels (expected b.png)"),
    ("extra", "Label {r}/labels/c.png has no image with the stem 'c'"),
    ("size", "Label {r}/labels/a.png is 8x5 but its image {r}/images/a.jpg is 8x6"),
    ("id", "Label {r}/labels/a.png has class id 40 at 48 pixels, but the model has 35 labels"),
    ("rgb", "Label {r}/labels/a.png is a RGB image, not an 8-bit class map"),
    ("nolabels", "{r} has no labels/ folder"),
    ("empty", "{r}/images is empty"),
    ("twice", "have the same stem 'a'"),
    ("notimage", "{r}/images/notes.txt is not an image"),
    ("ignored", "Every label pixel in {r}/labels is ignored (255)"),
    ("nofolder", "The labelled set {r} (evaluate.data, or data= on the command line) is not a"),
])
def test_each_bad_dataset_is_one_sentence_naming_the_file(tmp_path, case, needle):
    r = str(tmp_path / "set")
    if case == "missing":
        make_set(r, labels=["a"])
    elif case == "extra":
        make_set(r, labels=["a", "b", "c"])
    elif case == "size":
        make_set(r, images=["a"])
        Image.new("L", (8, 5), 1).save(os.path.join(r, "labels", "a.png"))
    elif case == "id":
        make_set(r, images=["a"], value=40)
    elif case == "rgb":
        make_set(r, images=["a"], mode="RGB", value=(1, 1, 1))
    elif case == "nolabels":
        make_set(r, images=["a"])
        os.rename(os.path.join(r, "labels"), os.path.join(r, "gt"))
    elif case == "empty":
        make_set(r, images=[])
    elif case == "twice":
        make_set(r, images=["a"])
        Image.new("RGB", (8, 6)).save(os.path.join(r, "images", "a.png"))
    elif case == "notimage":
        make_set(r, images=["a"])
        open(os.path.join(r, "images", "notes.txt"), "w").close()
    elif case == "ignored":
        make_set(r, value=255)
    elif case == "nofolder":
        pass
    with pytest.raises(data.DatasetError) as e:
        check(r)
    assert needle.format(r=r) in str(e.value)
    assert len(str(e.value).rstrip(".").split(". ")) == 1  # one sentence


def test_255_is_ignore_and_ids_up_to_the_last_label_are_accepted(tmp_path):
    r = make_set(str(tmp_path / "s"), images=["a"], value=255)
    Image.new("L", (8, 6), 34).save(os.path.join(r, "labels", "a.png"))
    check(r)
    with pytest.raises(data.DatasetError,
                       match="class id 34 at 48 pixels, but the model has 34 labels .ids 0-33"):
        check(r, num_labels=34)


def test_a_palette_png_is_read_by_its_indices_not_its_colours(tmp_path):
    r = make_set(str(tmp_path / "p"), images=["a"], mode="P", value=7)
    _, pairs = check(r)
    label = data.read_label(pairs[0][2], "indices", 35)
    assert label.dtype == np.uint8 and (label == 7).all()


def test_sidewalk_export_ignores_unlabeled_and_keeps_the_other_ids(tmp_path):
    r = make_set(str(tmp_path / "w"), images=["a"])
    stored = np.array([[0, 1, 34, 255]], np.uint8).repeat(6, 0).repeat(2, 1)
    Image.fromarray(stored, "L").save(os.path.join(r, "labels", "a.png"))
    layout, pairs = check(r, "sidewalk")
    assert layout == "sidewalk"
    label = data.read_label(pairs[0][2], "sidewalk", 35)
    assert label[0].tolist() == [255, 255, 1, 1, 34, 34, 255, 255]
    data.check_model("sidewalk", list(data.SIDEWALK_LABELS))
    with pytest.raises(data.DatasetError, match="35 segments/sidewalk-semantic classes"):
        data.check_model("sidewalk", ["road", "sky"])
    renamed = list(data.SIDEWALK_LABELS)
    renamed[21] = "construction-fence"  # the embedded model's name for class 21
    with pytest.raises(data.DatasetError, match="class 21 is construction-fence, not "
                                                "construction-fenceguardrail"):
        data.check_model("sidewalk", renamed)


def test_cityscapes_label_ids_map_to_train_ids_and_pair_by_their_suffixes(tmp_path):
    r = str(tmp_path / "c")
    os.makedirs(os.path.join(r, "images"))
    os.makedirs(os.path.join(r, "labels"))
    Image.new("RGB", (6, 1)).save(os.path.join(r, "images", "aachen_000000_000019_leftImg8bit.png"))
    stored = np.array([[7, 26, 33, 0, 9, 255]], np.uint8)
    lab = os.path.join(r, "labels", "aachen_000000_000019_gtFine_labelIds.png")
    Image.fromarray(stored, "L").save(lab)
    layout, pairs = check(r, num_labels=19)
    assert layout == "cityscapes" and pairs[0][0] == "aachen_000000_000019"
    assert data.read_label(lab, layout, 19)[0].tolist() == [0, 13, 18, 255, 255, 255]
    Image.fromarray(np.array([[34] * 6], np.uint8), "L").save(lab)
    with pytest.raises(data.DatasetError, match="class id 34 .* Cityscapes ids 0-33"):
        check(r, num_labels=19)
    with pytest.raises(data.DatasetError, match="19 train ids, but the model has 35"):
        data.check_model("cityscapes", list(data.SIDEWALK_LABELS))


def test_the_schema_lists_the_layouts_of_the_reader():
    assert schema.LABEL_LAYOUTS == data.LAYOUTS
    assert schema.VARIABLES["data"][1] == ("evaluate.data",)


def test_data_is_resolved_in_the_folder_doit_runs_in(tmp_path):
    from stages.common.config import ROOT, load
    sub = os.path.join(ROOT, "datasets")
    cfg = load("pipeline.yaml", {"data": "sidewalk-demo"}, sub)
    assert cfg["evaluate"]["data"] == os.path.join("datasets", "sidewalk-demo")
    outside = str(tmp_path / "set")
    assert load("pipeline.yaml", {"data": outside}, sub)["evaluate"]["data"] == outside
    assert load("pipeline.yaml", {"data": "../set"}, str(tmp_path / "x"))["evaluate"][
        "data"] == outside


def test_the_config_refuses_a_drop_limit_out_of_bounds():
    from stages.common.config import load
    from stages.common.errors import ConfigError
    with pytest.raises(ConfigError, match="evaluate.labels"):
        load("pipeline.yaml", {"labels": "voc"})
    cfg = load("pipeline.yaml", {"data": "somewhere/else"})
    assert cfg["evaluate"]["data"] == os.path.join("somewhere", "else")
    assert 0 < cfg["evaluate"]["max_miou_drop"] <= 1


def test_fold_state_reads_the_sidecar():
    assert fold_state({}) is None
    assert fold_state({"decode_head": {"format": "segformer-decode-head-fold/1", "folded": True,
                                       "macs": {}}}) is True
    assert fold_state({"decode_head": {"folded": False}}) is False
    assert fold_state({"folded": False}) is False


class Tty(io.StringIO):
    def __init__(self, tty):
        io.StringIO.__init__(self)
        self.tty = tty

    def isatty(self):
        return self.tty


def test_the_progress_line_is_only_for_a_terminal_and_ends_its_line():
    tty = Tty(True)
    p = Progress("fp32", 3, tty)
    p.step(1)
    p.step(3)
    p.close()
    assert tty.getvalue() == "\revaluate fp32: 1/3 images\revaluate fp32: 3/3 images\n"
    pipe = Tty(False)
    p = Progress("fp32", 3, pipe)
    p.step(1)
    p.close()
    assert pipe.getvalue() == ""
