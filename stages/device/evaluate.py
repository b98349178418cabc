"""doit evaluate data=DIR: accuracy against labels (mIoU, aAcc, per-class IoU and accuracy, as
mmsegmentation computes them: runtime/metrics.py) for every variant this machine can run:
  reference     transformers on the CPU (host only: stages/host/evaluate_host.py)
  fp32          model.onnx on ONNX Runtime with the CPU ops (the sidecar says whether it is folded)
  fp16-preview  model.mixed.onnx through the faithful fp16 emulation (host only)
  engine        this device's TensorRT engine through the runtime (where one is built)
Each variant's change is measured against the baseline (the reference; the fp32 ONNX where no
reference was run). On a machine without the host variants, those of a host report already in
artifacts/evaluate/ for the same labelled set and model.onnx are kept beside this machine's, so
the device reports its engine's mIoU next to the host's numbers. The gate (evaluate.max_miou_drop,
evaluate.max_class_iou_drop) fails the task in one sentence."""
import os
import shutil
import sys
import time
from importlib.util import find_spec

import numpy as np

from runtime import files, metrics
from runtime.errors import DeviceError, ToleranceError
from stages.device import evaluate_data as data
from stages.device import evaluate_pictures as pictures

FORMAT = "segformer-evaluate/1"
ORDER = ("reference", "fp32", "fp16-preview", "engine")


class Variant(object):
    """A way to turn an image (BGR uint8) into a mask (HxW uint8 class ids)."""

    def __init__(self, name, title, where, mask):
        self.name, self.title, self.where, self.mask = name, title, where, mask


def fold_state(sidecar):
    """What model.onnx's sidecar says about the decode-head fold: True/False, or None. The fold
    (issue 22) records {"format": "segformer-decode-head-fold/1", "folded": bool, ...} under
    "decode_head"."""
    for key in ("decode_head", "fold", "folded"):
        value = sidecar.get(key)
        if isinstance(value, dict):
            value = value.get("folded", value.get("enabled", value.get("applied")))
        if isinstance(value, bool):
            return value
    return None


def device_variants(layout, onnx_meta, here="device"):
    """fp32 (ONNX Runtime, where it imports and model.onnx exists) and engine (where built)."""
    from stages.device import settings
    from stages.device.select import open_runtime
    out = []
    if find_spec("onnxruntime") and os.path.isfile(layout.onnx_model):
        seg = open_runtime(layout, "onnxruntime", pre_post="cpu")
        folded = {True: "decode head folded", False: "not folded", None: "fold not recorded"}[
            fold_state(onnx_meta)]
        out.append(Variant("fp32", "fp32 ONNX, ONNX Runtime (%s)" % folded, here,
                           lambda image, seg=seg: seg.segment(image).mask))
    if settings.built_engine(layout) is not None:
        seg = open_runtime(layout, "tensorrt")
        d = seg.backend.describe()
        out.append(Variant("engine", "engine %s, TensorRT %s, %s, pre/post on the %s" % (
            seg.backend.precision, d.get("tensorrt"), os.path.basename(os.path.dirname(
                d["model"])), seg.pre_post.upper()), here,
            lambda image, seg=seg: seg.segment(image).mask))
    return out


class Progress(object):
    """`evaluate fp32: 12/40 images` rewritten in place, only on a terminal; ended with a newline
    so every other message stays on its own line."""

    def __init__(self, name, total, stream=None):
        self.stream = stream or sys.__stderr__
        self.on = total > 1 and self.stream is not None and self.stream.isatty()
        self.name, self.total = name, total

    def step(self, done):
        if self.on:
            self.stream.write("\revaluate %s: %d/%d images" % (self.name, done, self.total))
            self.stream.flush()

    def close(self):
        if self.on:
            self.stream.write("\n")
            self.stream.flush()


def run_variant(variant, pairs, layout_name, labels, worst_n, max_mp):
    """(result, worst) for one variant: the summed confusion matrix's scores, one row per image,
    and the worst_n images by mIoU with their label and prediction."""
    from runtime.images import read_image
    n = len(labels)
    total = np.zeros((n, n), np.int64)
    rows, worst = [], []
    progress = Progress(variant.name, len(pairs))
    started = time.time()
    try:
        for k, (stem, image_path, label_path) in enumerate(pairs):
            label = data.read_label(label_path, layout_name, n)
            prediction = variant.mask(read_image(image_path, max_mp))
            matrix = metrics.confusion(label, prediction, n)
            total += matrix
            row = dict(metrics.image_scores(matrix), image=image_path)
            rows.append(row)
            if row["mIoU"] is not None:
                worst = sorted(worst + [(row["mIoU"], stem, image_path, label, prediction)],
                               key=lambda w: w[0])[:worst_n]
            progress.step(k + 1)
    finally:
        progress.close()
    result = metrics.scores(total, labels)
    result.update({"title": variant.title, "where": variant.where, "images": rows,
                   "confusion": total.tolist(), "seconds": round(time.time() - started, 2)})
    return result, worst


def host_report(path, data_sha, onnx_sha, running):
    """The variants of an earlier report for the same labelled set and model.onnx that this
    machine does not run, else {}."""
    if not os.path.isfile(path):
        return {}
    old = files.read_json(path)
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        return {}
    others = dict((k, v) for k, v in old.get("variants", {}).items() if k not in running)
    if not others:
        return {}
    if old.get("data_sha256") != data_sha or old.get("model", {}).get("onnx_sha256") != onnx_sha:
        print("note: %s is for another labelled set or model.onnx; its variants are not "
              "carried over." % path)
        return {}
    return others


def _sorted(names):
    return sorted(names, key=lambda v: (ORDER.index(v) if v in ORDER else len(ORDER), v))


def run_evaluate(cfg, layout, host_factory=None):
    """doit evaluate: every variant this machine can run on the labelled set evaluate.data."""
    opts = cfg["evaluate"]
    layout_name, pairs = data.find_pairs(opts["data"], opts["labels"])
    labels, onnx_meta = _labels(layout)
    data.check_model(layout_name, labels)
    data_sha = data.check_all(pairs, layout_name, len(labels))
    variants = []
    if host_factory is not None:
        from stages.common.actions import resolve
        variants += resolve(host_factory)(cfg, layout)
    variants += device_variants(layout, onnx_meta, "host" if host_factory else "device")
    if not variants:
        raise DeviceError("No variant can run here: run `doit onnx` (host) or copy the bundle "
                             "with model.onnx, then `doit evaluate` again.")
    variants.sort(key=lambda v: ORDER.index(v.name))
    out_dir = os.path.join(layout.artifacts, "evaluate")
    carried = host_report(os.path.join(out_dir, "report.json"), data_sha,
                          onnx_meta.get("onnx_sha256"), [v.name for v in variants])
    report = _report(opts, layout_name, pairs, data_sha, labels, onnx_meta)
    staged = files.staged_dir(out_dir)
    try:
        _carry(carried, out_dir, staged, report)
        for v in variants:
            result, worst = run_variant(v, pairs, layout_name, labels, opts["worst"],
                                        cfg["infer"]["max_megapixels"])
            report["variants"][v.name] = result
            result["pictures"] = _worst_pictures(staged, v.name, worst, onnx_meta, labels)
        _finish(report, opts, staged, labels)
        files.write_json(os.path.join(staged, "report.json"), report)
        files.replace_dir(staged, out_dir)
    finally:
        if os.path.isdir(staged):
            shutil.rmtree(staged, ignore_errors=True)
    print_table(report)
    if report["failures"]:
        raise ToleranceError("evaluate: %s (pictures and report.json in %s)." % (
            report["failures"][0], out_dir))


def _labels(layout):
    """The model's labels and sidecar, from model.onnx's sidecar (the host's onnx link)."""
    from runtime import sidecar
    if not os.path.isfile(layout.onnx_sidecar):
        raise DeviceError("%s is missing: run `doit onnx` on the host (or copy the bundle), "
                          "then `doit evaluate` again." % layout.onnx_sidecar)
    meta = sidecar.load(layout.onnx_sidecar)
    return meta["labels"], meta


def _report(opts, layout_name, pairs, data_sha, labels, onnx_meta):
    return {"format": FORMAT, "data": opts["data"], "labels": layout_name,
            "image_count": len(pairs), "data_sha256": data_sha,
            "model": {"labels": labels, "onnx_sha256": onnx_meta.get("onnx_sha256"),
                      "folded": fold_state(onnx_meta)},
            "limits": {"max_miou_drop": opts["max_miou_drop"],
                       "max_class_iou_drop": opts["max_class_iou_drop"]},
            "variants": {}}


def _carry(carried, out_dir, staged, report):
    """Keep an earlier report's variants that this machine does not run (and their pictures)."""
    for name, result in carried.items():
        worst = [rel for rel in result.get("pictures", {}).get("worst", [])
                 if os.path.isfile(os.path.join(out_dir, rel))]  # a bundle carries none
        for rel in worst:
            os.makedirs(os.path.dirname(os.path.join(staged, rel)), exist_ok=True)
            shutil.copy2(os.path.join(out_dir, rel), os.path.join(staged, rel))
        report["variants"][name] = dict(result, carried_from="an earlier report in %s" % out_dir,
                                        pictures={"worst": worst})


def _worst_pictures(staged, name, worst, meta, labels):
    from runtime.images import read_image
    from runtime.palette import palette_rgb
    palette = meta.get("palette") or palette_rgb(len(labels))
    out = []
    for rank, (score, stem, image_path, label, prediction) in enumerate(worst):
        rel = os.path.join("worst", "%s_%d_%s.jpg" % (name, rank + 1, stem))
        caption = "%s, worst #%d: %s, mIoU %.3f" % (name, rank + 1, os.path.basename(image_path),
                                                   score)
        files.write_bytes(os.path.join(staged, rel), pictures.worst_strip(
            read_image(image_path, None), label, prediction, palette, caption))
        out.append(rel)
    return {"worst": out}


def _finish(report, opts, staged, labels):
    """Baseline, changes, gate and the charts."""
    variants = report["variants"]
    baseline = "reference" if "reference" in variants else _sorted(variants)[0]
    report["baseline"] = baseline
    base = variants[baseline]
    for name in _sorted(variants):
        v = variants[name]
        v["change"] = metrics.changes(v, base)
        chart = "iou_%s.png" % name
        files.write_bytes(os.path.join(staged, chart), pictures.iou_chart(
            "%s: %s (mIoU %s)" % (name, v["title"], _f(v["mIoU"])), v["classes"],
            None if name == baseline else base["classes"]))
        v.setdefault("pictures", {})["iou"] = chart
    confusion = "confusion_%s.png" % baseline
    files.write_bytes(os.path.join(staged, confusion), pictures.confusion_picture(
        "confusion matrix of the %s on %d images" % (baseline, report["image_count"]),
        base["confusion"], labels))
    base["pictures"]["confusion"] = confusion
    fails = metrics.gate(variants, baseline, opts["max_miou_drop"], opts["max_class_iou_drop"])
    report["failures"] = [sentence for _, sentence in fails]
    report["passed"] = not fails


def _f(x, fmt="%.4f"):
    return "-" if x is None else fmt % x


def _signed(x):
    return "-" if x is None else "%+.4f" % x


def print_table(report):
    variants, baseline = report["variants"], report["baseline"]
    names = _sorted(variants)
    print("evaluate: %d images in %s (labels: %s), baseline: %s" % (
        report["image_count"], report["data"], report["labels"], baseline))
    print("  %-13s %-11s %8s %8s %8s %8s %8s  %s" % (
        "variant", "where", "mIoU", "change", "aAcc", "change", "mAcc", "what"))
    for name in names:
        v = variants[name]
        where = "earlier run" if v.get("carried_from") else v["where"]
        print("  %-13s %-11s %8s %8s %8s %8s %8s  %s" % (
            name, where, _f(v["mIoU"]), _signed(v["change"]["mIoU"]), _f(v["aAcc"]),
            _signed(v["change"]["aAcc"]), _f(v["mAcc"]), v["title"]))
    print("  per-class IoU (classes with a non-empty union in the %s):" % baseline)
    print("  %-28s" % "class" + "".join("%14s" % n for n in names))
    for k, c in enumerate(variants[baseline]["classes"]):
        if c["iou"] is None:
            continue
        print("  %-28s" % c["name"][:28] + "".join(
            "%14s" % _f(variants[n]["classes"][k]["iou"]) for n in names))
    print("  %s" % ("passed: every variant within evaluate.max_miou_drop %g of the %s" % (
        report["limits"]["max_miou_drop"], baseline) if report["passed"] else
        "FAILED: " + "; ".join(report["failures"])))
