"""Segmentation accuracy against labels, computed the way mmsegmentation computes it.

mmsegmentation's IoUMetric (mmseg/evaluation/metrics/iou_metric.py, 1.x):
  * `intersect_and_union` drops the pixels whose label is `ignore_index` (255), then takes, per
    class, the histograms of the intersection (pred == label), of the prediction and of the label;
    area_union = area_pred + area_label - area_intersect.
  * `compute_metrics` sums those four histograms over the whole set, and `total_area_to_metrics`
    gives aAcc = sum(intersect) / sum(label), IoU = intersect / union and Acc = intersect / label
    per class (NaN where the denominator is 0).
  * the summary is `np.nanmean` of each per-class array: mIoU and mAcc are means over the classes
    with a non-empty union (resp. label area); a class that appears only in the prediction has
    IoU 0 and counts, a class absent from both is NaN and does not.
Here the four histograms come from one confusion matrix (rows: label, columns: prediction),
accumulated image by image with np.bincount: its diagonal is the intersection, its row sums the
label area and its column sums the prediction area, so the numbers are the same.

Python 3.6, numpy only: the device runs this too (stages/device/evaluate.py)."""
import numpy as np

IGNORE = 255


def confusion(label, prediction, num_classes, ignore=IGNORE):
    """num_classes x num_classes int64 counts of (label, prediction) over the pixels whose label
    is not `ignore`. The caller has checked that labels and predictions are < num_classes."""
    label = np.asarray(label)
    prediction = np.asarray(prediction)
    if label.shape != prediction.shape:
        raise ValueError("label %s and prediction %s differ in shape" % (label.shape,
                                                                        prediction.shape))
    valid = label != ignore
    index = label[valid].astype(np.int64) * num_classes + prediction[valid].astype(np.int64)
    counts = np.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(numerator, denominator):
    """numerator / denominator per class, NaN where the denominator is 0 (no warning)."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values):
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


def _number(x):
    return None if x is None or np.isnan(x) else float(x)


def scores(matrix, labels):
    """The metrics of a confusion matrix: aAcc, mIoU, mAcc (None when nothing is labelled) and,
    per class, IoU, Acc (None where undefined) and the four areas."""
    matrix = np.asarray(matrix, np.int64)
    intersect = np.diag(matrix)
    area_label, area_pred = matrix.sum(axis=1), matrix.sum(axis=0)
    union = area_label + area_pred - intersect
    iou, acc = _ratio(intersect, union), _ratio(intersect, area_label)
    total = int(area_label.sum())
    classes = []
    for c, name in enumerate(labels):
        classes.append({"id": c, "name": name, "iou": _number(iou[c]), "acc": _number(acc[c]),
                        "intersect": int(intersect[c]), "union": int(union[c]),
                        "label_pixels": int(area_label[c]), "pred_pixels": int(area_pred[c])})
    return {"aAcc": float(intersect.sum()) / total if total else None,
            "mIoU": _nanmean(iou), "mAcc": _nanmean(acc), "pixels": total, "classes": classes}


def image_scores(matrix):
    """aAcc and mIoU of one image's confusion matrix (for ranking the worst images)."""
    s = scores(matrix, [str(c) for c in range(len(matrix))])
    return {"aAcc": s["aAcc"], "mIoU": s["mIoU"], "pixels": s["pixels"]}


def changes(result, baseline):
    """result minus baseline: mIoU, aAcc, mAcc and per-class IoU (None where either is None)."""
    def diff(a, b):
        return None if a is None or b is None else a - b
    out = dict((k, diff(result[k], baseline[k])) for k in ("mIoU", "aAcc", "mAcc"))
    out["iou"] = dict((c["name"], diff(c["iou"], b["iou"]))
                      for c, b in zip(result["classes"], baseline["classes"]))
    return out


def gate(variants, baseline_name, max_miou_drop, max_class_iou_drop=None):
    """The sentences of the variants that lose more than the limits against the baseline:
    [(variant, sentence)], empty when every variant is within them."""
    base = variants[baseline_name]
    out = []
    for name in sorted(variants):
        if name == baseline_name:
            continue
        result = variants[name]
        drop = base["mIoU"] - result["mIoU"] if None not in (base["mIoU"], result["mIoU"]) else 0
        worst = _worst_class(result, base)
        if drop > max_miou_drop:
            out.append((name, "variant %s loses %.4f mIoU against the %s (%.4f -> %.4f), more "
                              "than evaluate.max_miou_drop %g%s" % (
                                  name, drop, baseline_name, base["mIoU"], result["mIoU"],
                                  max_miou_drop, _class_note(worst))))
        elif max_class_iou_drop is not None and worst and worst[1] > max_class_iou_drop:
            out.append((name, "variant %s loses %.4f IoU on class %s against the %s (%.4f -> "
                              "%.4f), more than evaluate.max_class_iou_drop %g" % (
                                  name, worst[1], worst[0], baseline_name, worst[2], worst[3],
                                  max_class_iou_drop)))
    return out


def _worst_class(result, base):
    """(name, drop, baseline IoU, variant IoU) of the class that loses the most IoU, or None."""
    worst = None
    for c, b in zip(result["classes"], base["classes"]):
        if c["iou"] is None or b["iou"] is None:
            continue
        drop = b["iou"] - c["iou"]
        if worst is None or drop > worst[1]:
            worst = (c["name"], drop, b["iou"], c["iou"])
    return worst


def _class_note(worst):
    if not worst or worst[1] <= 0:
        return ""
    return "; its largest class drop is %s (IoU %.4f -> %.4f)" % (worst[0], worst[2], worst[3])
