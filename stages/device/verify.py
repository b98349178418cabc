"""doit verify: check each golden image through the runtime in three layers, so a failure
points at its cause: (a) pre-processing, (b) the backend's logits, (c) the end-to-end mask."""
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
    d = compare.abs_diff(seg.backend.infer(golden_tensor), golden_logits)
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


def picture(image, mask, golden_mask, seg):
    """golden | runtime | disagreement (red) side by side, at most 1800 px wide."""
    import cv2
    from runtime.segmenter import overlay
    g = overlay(image, golden_mask, 0.5, seg.labels, seg.palette)
    r = overlay(image, mask, 0.5, seg.labels, seg.palette)
    diff = (image * 0.35).astype(np.uint8)
    diff[mask != golden_mask] = (0, 0, 255)
    strip = np.concatenate([g, r, diff], axis=1)
    scale = min(1.0, 1800.0 / strip.shape[1])
    if scale < 1.0:
        strip = cv2.resize(strip, (int(strip.shape[1] * scale), int(strip.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    for k, text in enumerate(("golden", "runtime", "disagreement")):
        cv2.putText(strip, text, (int(k * strip.shape[1] / 3) + 8, strip.shape[0] - 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()


def run_verify(cfg, layout, backend=None):
    """doit verify: the runtime against the golden files (backend: verify.backend by default)."""
    from runtime.images import read_image
    backend = backend or cfg["verify"]["backend"]
    from stages.device.select import describe, open_runtime
    seg = open_runtime(layout, backend)
    info = describe(seg)
    precision = seg.backend.precision
    limits = precisions.limits(cfg["verify"], precision)
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
    report = {"runtime": info, "precision": precision, "limits": limits, "images": rows,
              "passed": not any(r["failures"] for r in rows)}
    files.write_json(os.path.join(layout.verify_dir, "report.json"), report)
    print_table(report)
    bad = [r for r in rows if r["failures"]]
    if bad:
        raise ToleranceError("verify failed on %s: %s (thresholds: verify.%s in pipeline.yaml; "
                             "pictures in %s)." % (
            bad[0]["image"], bad[0]["failures"][0], precisions.get(precision).verify_key,
            layout.verify_dir))


def print_table(report):
    rt = report["runtime"]
    print("verify: backend %s (%s), pre/post on the %s, %s thresholds" % (
        rt["backend"], rt["model"], rt["pre_post"].upper(), report["precision"]))
    print("  %-32s %10s %10s %10s %9s %7s  %s" % (
        "image", "(a) input", "(b) max", "(b) mean", "(c) agree", "mIoU", "result"))
    for r in report["images"]:
        print("  %-32s %10.2e %10.2e %10.2e %8.4f%% %7.4f  %s" % (
            os.path.basename(r["image"])[:32], r["input_max_abs"], r["logits_max_abs"],
            r["logits_mean_abs"],
            100 * r["mask_agreement"], r["miou"], "FAIL" if r["failures"] else "ok"))
