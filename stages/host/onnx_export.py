"""onnx link (host only): export with torch.onnx (eager attention, fixed 1x3xHxW), run the full
onnx.checker, shape inference and onnx-simplifier, gate for the target TensorRT, and prove
parity with the golden logits and masks through ONNX Runtime on the CPU. Fails, never warns."""
import hashlib
import os
import time


from stages.common import compare
from stages.common import files
from stages.host import checkout, onnx_gate
from stages.common.errors import ExportError, ToleranceError
from runtime import palette as pal
from runtime.finite import DAMAGED
from runtime.reference import upsample_argmax
from runtime.sidecar import INPUT_NAME, OUTPUT_NAME

EXPORT_SETTINGS = {  # declared as data, recorded in report.json
    "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
    "attn_implementation": "eager",  # SDPA cannot be exported at opset 13
    "input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME],
    "do_constant_folding": True, "dynamic_axes": None,
}


def export_graph(model_dir, manifest, opset, path, allow_pickle=False, fold=False):
    """torch model (rewritten by its family first: e.g. the decode head folded when `fold`) ->
    ONNX file at `path` (written atomically); returns the export seconds."""
    import torch
    family = checkout.family(model_dir)

    class LogitsOnly(torch.nn.Module):
        def __init__(self, model):
            torch.nn.Module.__init__(self)
            self.model = model

        def forward(self, pixel_values):
            return family.logits(self.model, pixel_values)

    model = checkout.load_model(model_dir, manifest, allow_pickle)  # the one loader (pickles)
    family.rewrite(model, fold)
    dummy = torch.zeros(1, 3, manifest["input"]["height"], manifest["input"]["width"])
    t0 = time.time()
    with files.atomic_path(path, suffix=".onnx") as tmp:
        try:
            torch.onnx.export(LogitsOnly(model), (dummy,), tmp, opset_version=opset, dynamo=False,
                              input_names=EXPORT_SETTINGS["input_names"],
                              output_names=EXPORT_SETTINGS["output_names"],
                              do_constant_folding=EXPORT_SETTINGS["do_constant_folding"])
        except OSError:
            raise  # the machine's fault (full disk, read-only folder), not the opset's
        except Exception as e:  # torch raises many types; the sentence names the setting to change
            raise ExportError("torch.onnx.export failed at onnx.opset %d (%s: %s): try another "
                              "opset in pipeline.yaml." % (
                                  opset, type(e).__name__, str(e).splitlines()[0][:200]))
    return time.time() - t0


def check_and_simplify(path, simplify):
    """Full checker, shape inference, and onnx-simplifier; returns (model, node counts)."""
    import onnx
    model = onnx.load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise ExportError("The exported graph fails onnx.checker (%s): this is an exporter "
                          "problem; try another onnx.opset." % str(e).splitlines()[0][:200])
    counts = {"nodes_exported": len(model.graph.node)}
    if simplify:
        import onnxsim
        model, ok = onnxsim.simplify(model)
        if not ok:
            raise ExportError("onnx-simplifier could not validate the simplified graph: set "
                              "onnx.simplify: false in pipeline.yaml.")
        onnx.checker.check_model(model, full_check=True)
    counts["nodes_final"] = len(model.graph.node)
    return model, counts


def resize_modes(model):
    """The attributes of every Resize node (TensorRT < 8 differed on half_pixel)."""
    modes = set()
    for n in model.graph.node:
        if n.op_type == "Resize":
            attrs = dict((a.name, a.s.decode() if a.s else a.i) for a in n.attribute)
            modes.add("%s/%s" % (attrs.get("mode", "nearest"),
                                 attrs.get("coordinate_transformation_mode", "half_pixel")))
    return sorted(modes)


def parity(onnx_path, golden_json, limits, labels):
    """ONNX Runtime (CPU) on each golden input tensor vs the golden logits and masks."""
    import onnxruntime as ort
    from runtime.golden import load_case, read_index
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    rows = []
    for rec in read_index(golden_json):
        tensor, golden_logits, golden_mask = load_case(rec)
        logits = sess.run([OUTPUT_NAME], {INPUT_NAME: tensor})[0]
        compare.require_finite(logits, DAMAGED % ("%s (model.onnx in ONNX Runtime)" %
                                                  rec["source"]))
        mask = upsample_argmax(logits, rec["height"], rec["width"])
        row = {"image": rec["source"],
               "argmax_agreement": compare.argmax_agreement(logits, golden_logits)}
        row.update(compare.abs_diff(logits, golden_logits))
        row.update(compare.mask_metrics(mask, golden_mask, labels))
        rows.append(row)
    worst = min(rows, key=lambda r: r["mask_agreement"])
    worst_abs = max(rows, key=lambda r: r["max_abs"])
    if (worst_abs["max_abs"] > limits["max_abs"]
        or worst["mask_agreement"] < limits["mask_agreement"]):
        raise ToleranceError(
            "ONNX parity failed on %s: logits max abs %.3g (limit onnx.max_abs %.3g), mask "
            "agreement %.4f%% (limit onnx.mask_agreement %.4f%%): the export does not reproduce "
            "the model; check the opset and simplify settings." % (
                worst_abs["image"], worst_abs["max_abs"], limits["max_abs"],
                100 * worst["mask_agreement"], 100 * limits["mask_agreement"]))
    return rows


def run_onnx(cfg, layout):
    """The onnx link: export, check, simplify, gate and parity -> model.onnx and its sidecar."""
    model_dir, onnx_cfg, allow_pickle = (cfg["model"]["path"], cfg["onnx"],
                                         cfg["model"]["allow_pickle"])
    manifest = files.read_json(layout.manifest)
    exported = files.scratch_path(layout.onnx_model, "export", ".onnx")
    candidate = files.scratch_path(layout.onnx_model, "candidate", ".onnx")
    opset = onnx_gate.export_opset(onnx_cfg)
    seconds = export_graph(model_dir, manifest, opset, exported, allow_pickle, onnx_cfg["fold"])
    try:
        model, counts = check_and_simplify(exported, onnx_cfg["simplify"])
        gate = onnx_gate.check(model, onnx_cfg["target_tensorrt"])
        data = model.SerializeToString()
        files.write_bytes(candidate, data)
        rows = parity(candidate, layout.golden_json, onnx_cfg, manifest["labels"])
        os.replace(candidate, layout.onnx_model)
    finally:
        for leftover in (exported, candidate):
            if os.path.exists(leftover):
                os.remove(leftover)
    sha = hashlib.sha256(data).hexdigest()
    fields = checkout.family(model_dir).sidecar_fields(model, model_dir, onnx_cfg["fold"])
    write_sidecar(layout.onnx_sidecar, manifest, model, sha, files.read_json(layout.golden_json),
                  fields)
    report = _report(onnx_cfg, counts, gate, rows, sha, len(data), seconds, model)
    report.update(export_opset=opset, decode_head=fields.get("decode_head"))
    files.write_json(layout.onnx_report, report)
    _summary(report)


def write_sidecar(path, manifest, model, sha, golden, family_fields):
    """model.json: the runtime's fields, plus what the model's family adds (family_fields)."""
    from runtime.sidecar import model_sidecar
    out = model.graph.output[0].type.tensor_type.shape
    meta = model_sidecar(manifest, golden["processor"]["pass_order"],
                         [d.dim_value for d in out.dim], sha,
                         pal.palette_rgb(manifest["num_labels"]))
    meta.update(family_fields)
    files.write_json(path, meta)


def _report(cfg, counts, gate, rows, sha, size, seconds, model):
    import onnx
    import onnxruntime
    import torch
    versions = {"torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__}
    try:
        import onnxsim
        versions["onnxsim"] = getattr(onnxsim, "__version__", "unknown")
    except ImportError:
        pass
    return {"opset": cfg["opset"], "simplify": cfg["simplify"], "export_settings": EXPORT_SETTINGS,
            "node_counts": counts, "gate": gate, "resize_modes": resize_modes(model),
            "parity": {"limits": {"max_abs": cfg["max_abs"],
                                  "mask_agreement": cfg["mask_agreement"]},
                       "images": rows},
            "onnx_sha256": sha, "onnx_bytes": size, "export_seconds": round(seconds, 2),
            "deterministic": "the TorchScript exporter is deterministic for a fixed model and "
                             "opset: the same checkout exports the same sha256 (tested)",
            "versions": versions}


def _summary(r):
    worst = max(p["max_abs"] for p in r["parity"]["images"])
    agree = min(p["mask_agreement"] for p in r["parity"]["images"])
    print("onnx: opset %d, %d -> %d nodes, %.1f MB, TensorRT %s gate passed (%d op types)" % (
        r.get("export_opset", r["opset"]), r["node_counts"]["nodes_exported"],
        r["node_counts"]["nodes_final"], r["onnx_bytes"] / 1e6, r["gate"]["target_tensorrt"],
        len(r["gate"]["ops"])))
    if r.get("decode_head"):
        print(_fold_line(r["decode_head"]))
    print("onnx: parity on %d golden images: logits max abs %.2e, mask agreement %.4f%%, "
          "sha256 %s" % (len(r["parity"]["images"]), worst, 100 * agree, r["onnx_sha256"][:16]))


def _fold_line(head):
    this, other = ("folded", "unfolded") if head["folded"] else ("unfolded", "folded")
    return "onnx: decode head %s: %.3f GMAC; the %s graph: %.3f GMAC (%.2fx)" % (
        "folded" if head["folded"] else "not folded (onnx.fold: false)",
        head["macs"][this] / 1e9, other, head["macs"][other] / 1e9, head["macs"]["ratio"])
