"""doit evaluate's host-only variants: the reference (transformers on the CPU, exactly as the
golden link makes its masks: the image processor, the model, post_process_semantic_segmentation
at the image's size) and the fp16 preview (model.mixed.onnx through the faithful fp16 emulation
of stages/host/fp16_emulate.py, the same run as `doit precision`'s preview, on the runtime's CPU
pre-processing and upsample-then-argmax). stages/device/evaluate.py runs them."""
import os

import numpy as np

from stages.common import precisions
from stages.device.evaluate import Variant


def reference_variant(cfg, layout):
    from stages.host.golden import checkout_manifest, load_reference
    manifest = checkout_manifest(layout.manifest)
    reference = load_reference(cfg["model"]["path"], manifest, cfg["model"]["allow_pickle"])

    def mask(bgr):  # the golden link's mask: the model family's golden_case
        return reference.case(np.ascontiguousarray(bgr[..., ::-1]))[2]
    return Variant("reference", "transformers on the CPU (%s)" % os.path.basename(
        os.path.normpath(cfg["model"]["path"])), "host", mask)


def fp16_preview_variant(layout):
    import onnx
    from runtime.reference import upsample_argmax
    from runtime.sidecar import INPUT_NAME, OUTPUT_NAME
    from stages.device.select import open_runtime
    from stages.host import fp16_emulate
    sess = fp16_emulate.session(fp16_emulate.emulate_fp16_storage(onnx.load(
        layout.precision_model)))
    pre = open_runtime(layout, "onnxruntime", pre_post="cpu")

    def mask(bgr):
        logits = sess.run([OUTPUT_NAME], {INPUT_NAME: pre.preprocess(bgr)})[0]
        logits = np.where(np.isfinite(logits), logits, np.float32(0))
        return upsample_argmax(logits, bgr.shape[0], bgr.shape[1])
    return Variant("fp16-preview", "model.mixed.onnx, emulated fp16 storage (ONNX Runtime CPU)",
                   "host", mask)


def has_current_mixed_model(layout):
    """True when precision.json and model.mixed.onnx were made from this model.onnx (not a mixed
    model left over from an earlier fp16 run after engine.precision became fp32)."""
    from runtime import files
    from runtime.backends import checked_onnx_sidecar
    from stages.device.limits import precision_report
    if not os.path.isfile(layout.precision_model):
        return False
    report, same = precision_report(
        layout, checked_onnx_sidecar(layout.onnx_model)["onnx_sha256"])
    return same and report.get("mixed_sha256") == files.sha256_file(layout.precision_model)


def host_variants(cfg, layout):
    """The reference, and the fp16 preview when the engine is fp16 and the precision link made
    model.mixed.onnx from this model.onnx."""
    out = [reference_variant(cfg, layout)]
    if (precisions.get(cfg["engine"]["precision"]).host_artifact is not None
            and has_current_mixed_model(layout)):
        out.append(fp16_preview_variant(layout))
    return out
