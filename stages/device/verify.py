"""doit verify: check each golden image through the runtime in three layers, so a failure
points at its cause: (a) pre-processing, (b) the backend's logits, (c) the end-to-end mask."""
import json
import os

import numpy as np

from stages.common import compare
from stages.common import files
from stages.common import precisions
from stages.common.errors import ArtifactError, ToleranceError

LAYERS = (("a", "input_max_abs", "pre-processing (runtime tensor vs golden input tensor)"),
          ("b", "logits_max_abs", "backend logits on the golden input vs golden logits"),
          ("b", "logits_mean_abs", "backend logits on the golden input vs golden logits"),
          ("c", "mask_agreement", "end-to-end mask vs golden mask"),
          ("c", "miou", "end-to-end mask vs golden mask"))


def check_case(seg, rec, image):
    from runtime.golden import load_case
    golden_tensor, golden_logits, golden_mask = load_case(rec)
    check_shapes(seg.backend, golden_tensor, golden_logits, rec)
    row = {"image": rec["source"]}
    row["input_max_abs"] = compare.abs_diff(seg.preprocess(image), golden_tensor)["max_abs"]
    logits = seg.backend.infer(golden_tensor)
    compare.require_finite(logits, "The %s backend produces %%s logits on %s (%s): the engine or "
                           "its weights are damaged, or fp16 overflows; rebuild it with `doit "
                           "build_engine`, or set engine.precision: fp32." % (
                               getattr(seg.backend, "name", "runtime"), rec["source"],
                               getattr(seg.backend, "source", "its model")))
    d = compare.abs_diff(logits, golden_logits)
    row["logits_max_abs"], row["logits_mean_abs"] = d["max_abs"], d["mean_abs"]
    mask = seg.segment(image).mask
    row.update(compare.mask_metrics(mask, golden_mask, seg.labels))
    return row, mask, golden_mask


def check_shapes(backend, golden_tensor, golden_logits, rec):
    """The model and the golden files must come from one model and input size."""
    got = (tuple(golden_tensor.shape), tuple(golden_logits.shape))
    if got != (backend.input_shape, backend.output_shape):
        raise ArtifactError(
            "The golden files in %s (%s -> %s) and %s (%s -> %s) come from different models or "
            "input sizes: rerun `doit golden onnx` on the host, or copy both from one bundle." % (
                rec["dir"], "x".join(map(str, got[0])), "x".join(map(str, got[1])), backend.source,
                "x".join(map(str, backend.input_shape)), "x".join(map(str, backend.output_shape))))


def failures(row, limits):
    out = []
    for layer, key, what in LAYERS:
        bad = row[key] > limits[key] if key.endswith("abs") else row[key] < limits[key]
        if bad:
            out.append("layer (%s) %s: %s %.4g vs limit %.4g" % (
                layer, what, key, row[key], limits[key]))
    return out


def picture(image, mask, golden_mask, seg, width=1800):
    """golden | runtime | disagreement (red) side by side, at most `width` px wide. The panels are
    made at their final size (so the class legends stay readable), under a title band whose text
    scales with the panels; with no disagreement the third panel says so."""
    import cv2
    from runtime.segmenter import overlay
    scale = min(1.0, width / 3.0 / image.shape[1])
    size = (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    masks = [cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in (golden_mask, mask)]
    panels = [overlay(small, m, 0.5, seg.labels, seg.palette) for m in masks]
    diff = (small * 0.35).astype(np.uint8)
    differ = int(np.count_nonzero(mask != golden_mask))
    diff[masks[1] != masks[0]] = (0, 0, 255)
    if not differ:
        _centered(diff, "no disagreement", size[1] // 2)
    band = np.zeros((max(24, size[0] // 14), size[0] * 3, 3), np.uint8)
    titles = ("golden", "runtime", "disagreement: %d px (%.3f%%)" % (
        differ, 100.0 * differ / mask.size) if differ else "disagreement: none")
    for k, text in enumerate(titles):
        _text(band, text, k * size[0] + 8, band.shape[0] * 3 // 4, band.shape[0] / 40.0)
    strip = np.concatenate([band, np.concatenate(panels + [diff], axis=1)], axis=0)
    return cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()


def _text(image, text, x, y, scale):
    import cv2
    cv2.putText(image, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, int(round(2 * scale))), cv2.LINE_AA)


def _centered(image, text, y):
    """`text` across the middle of `image`, as large as fits in 80 % of its width."""
    import cv2
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)[0][0]
    scale = 0.8 * image.shape[1] / width
    _text(image, text, image.shape[1] * 0.1, y, scale)


def run_verify(cfg, layout, backend=None):
    """doit verify: the runtime against the golden files (backend: verify.backend by default)."""
    from runtime.images import read_image
    backend = backend or cfg["verify"]["backend"]
    from stages.device.select import describe, open_runtime
    seg = open_runtime(layout, backend)
    info = describe(seg)
    precision = seg.backend.precision
    from stages.device.limits import resolve
    limits, sources, lines = resolve(cfg, layout, precision)
    for line in lines:
        print(line)
    rows = []
    from runtime.golden import read_index
    for i, rec in enumerate(read_index(layout.golden_json)):
        image = read_image(rec["source"])
        row, mask, golden_mask = check_case(seg, rec, image)
        row["failures"] = failures(row, limits)
        row["picture"] = os.path.join(layout.verify_dir, "%02d_%s.jpg" % (
            i, os.path.splitext(os.path.basename(rec["source"]))[0]))
        files.write_bytes(row["picture"], picture(image, mask, golden_mask, seg))
        rows.append(row)
    report = {"runtime": info, "precision": precision, "limits": limits,
              "limit_sources": sources, "images": rows,
              "passed": not any(r["failures"] for r in rows)}
    files.write_json(os.path.join(layout.verify_dir, "report.json"), report)
    print_table(report)
    bad = [r for r in rows if r["failures"]]
    if bad:
        raise ToleranceError("verify failed on %s: %s (thresholds: verify.%s, each from the "
                             "pipeline file, precision.json or the default as report.json's "
                             "limit_sources say; pictures in %s)." % (
            bad[0]["image"], bad[0]["failures"][0], precisions.get(precision).verify_key,
            layout.verify_dir))


def print_table(report):
    print("\n".join(table_lines(report)))


def table_lines(report):
    rt = report["runtime"]
    lines = ["verify: backend %s (%s), pre/post on the %s, %s thresholds" % (
        rt["backend"], rt["model"], rt["pre_post"].upper(), report["precision"]),
        "  %-32s %10s %10s %10s %9s %7s  %s" % (
            "image", "(a) input", "(b) max", "(b) mean", "(c) agree", "mIoU", "result")]
    for r in report["images"]:
        lines.append("  %-32s %10.2e %10.2e %10.2e %8.4f%% %7.4f  %s" % (
            os.path.basename(r["image"])[:32], r["input_max_abs"], r["logits_max_abs"],
            r["logits_mean_abs"],
            100 * r["mask_agreement"], r["miou"], "FAIL" if r["failures"] else "ok"))
    return lines


def last_report(path):
    """What an up-to-date `doit verify` prints (stages.common.actions.Reporter): that nothing
    changed since the last run, and that run's table from its report."""
    head = ("verify: up to date: nothing it checks (golden files, model, engine, backend, "
            "thresholds) changed since the last run, whose report is %s:" % path)
    try:
        with open(path) as f:
            return "\n".join([head] + table_lines(json.load(f))) + "\n"
    except (OSError, ValueError, KeyError, TypeError):
        return head[:-1] + " (unreadable: delete it to rerun verify).\n"
