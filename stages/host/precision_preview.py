"""The precision preview: an island set -> the mixed model's emulated fp16 run vs the golden files.

Per golden image: logits max/mean abs vs the golden logits, mask agreement and mIoU vs the golden
mask (upsample then argmax, as the runtime does), NaN/Inf counts. The limits for the device are
derived from these numbers (derive_limits); the table is what `doit precision` prints."""
import os

import numpy as np

from stages.common import compare
from stages.host import fp16_convert, fp16_emulate
from runtime.sidecar import INPUT_NAME, OUTPUT_NAME

ROW_KEYS = ("logits_max_abs", "logits_mean_abs", "mask_agreement", "miou", "nan", "inf")


def golden_cases(golden_json, root="."):
    """[(record, input tensor, golden logits, golden mask)] for each golden image."""
    from runtime.golden import load_case, read_index
    cases = []
    for rec in read_index(golden_json):
        rec = dict(rec, dir=os.path.join(root, rec["dir"]))
        cases.append((rec,) + tuple(load_case(rec)))
    return cases


def row(rec, logits, golden_logits, golden_mask, labels):
    """One preview row: logits errors vs the golden logits, masks vs the golden mask, NaN/Inf."""
    from runtime.reference import upsample_argmax
    finite = np.isfinite(logits)
    safe = np.where(finite, logits, np.float32(0))
    out = {"image": rec["source"], "nan": int(np.isnan(logits).sum()),
           "inf": int(np.isinf(logits).sum())}
    diff = compare.abs_diff(safe, golden_logits) if finite.all() else {"max_abs": float("inf"),
                                                                      "mean_abs": float("inf")}
    out["logits_max_abs"], out["logits_mean_abs"] = diff["max_abs"], diff["mean_abs"]
    mask = upsample_argmax(safe, rec["height"], rec["width"])
    metrics = compare.mask_metrics(mask, golden_mask, labels)
    out["mask_agreement"], out["miou"] = metrics["mask_agreement"], metrics["miou"]
    return out


def run_typed(typed_model, cases, labels):
    """Emulate the typed (fp16/mixed) model on every golden case; one row per image."""
    sess = fp16_emulate.session(fp16_emulate.emulate_fp16_storage(typed_model))
    rows = []
    for rec, tensor, golden_logits, golden_mask in cases:
        logits = sess.run([OUTPUT_NAME], {INPUT_NAME: tensor})[0]
        rows.append(row(rec, logits, golden_logits, golden_mask, labels))
    return rows


def preview(model, islands, cases, labels):
    """(mixed typed model, rows) for `model` converted with `islands` kept in fp32."""
    mixed = fp16_convert.to_mixed(model, islands)
    return mixed, run_typed(mixed, cases, labels)


def worst(rows):
    """The worst value of each metric over the images."""
    return {"logits_max_abs": max(r["logits_max_abs"] for r in rows),
            "logits_mean_abs": max(r["logits_mean_abs"] for r in rows),
            "mask_agreement": min(r["mask_agreement"] for r in rows),
            "miou": min(r["miou"] for r in rows),
            "nan": sum(r["nan"] for r in rows), "inf": sum(r["inf"] for r in rows)}


def _flip_bound(golden_logits, error):
    """Agreement and mIoU of the golden argmax if every pixel whose top-2 logit gap is below
    2 x error flips to its runner-up: what a logits error of `error` can do at worst."""
    chw = np.asarray(golden_logits, np.float64).reshape(golden_logits.shape[-3:])
    order = np.argsort(chw, axis=0)
    best, second = order[-1], order[-2]
    gap = np.take_along_axis(chw, best[None], 0)[0] - np.take_along_axis(chw, second[None], 0)[0]
    flipped = np.where(gap < 2 * error, second, best)
    labels = [str(i) for i in range(chw.shape[0])]
    m = compare.mask_metrics(flipped, best, labels)
    return m["mask_agreement"], m["miou"]


def derive_limits(rows, cases, margin):
    """Device limits from the preview: logits errors up to `margin` x the emulated ones, and the
    masks that such an error can leave at worst (see _flip_bound); never stricter than measured."""
    w = worst(rows)
    max_abs, mean_abs = margin * w["logits_max_abs"], margin * w["logits_mean_abs"]
    bounds = [_flip_bound(golden_logits, max_abs) for _, _, golden_logits, _ in cases]
    return {"logits_max_abs": max_abs, "logits_mean_abs": mean_abs,
            "mask_agreement": min([w["mask_agreement"]] + [b[0] for b in bounds]),
            "miou": min([w["miou"]] + [b[1] for b in bounds]),
            "margin": "logits max/mean abs: %g x the emulated fp16 error; mask agreement and mIoU: "
                      "the golden masks with every pixel flipped whose top-2 logit gap is below "
                      "2 x that max abs limit (at logits resolution)" % margin}


def table(title, rows):
    """The preview as text lines."""
    lines = [title, "  %-28s %10s %10s %10s %8s %6s %6s" % (
        "image", "max abs", "mean abs", "agree", "mIoU", "NaN", "Inf")]
    for r in rows:
        lines.append("  %-28s %10.3g %10.3g %9.4f%% %8.4f %6d %6d" % (
            os.path.basename(r["image"])[:28], r["logits_max_abs"], r["logits_mean_abs"],
            100 * r["mask_agreement"], r["miou"], r["nan"], r["inf"]))
    return lines
