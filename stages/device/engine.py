"""engine link (device only): model.onnx (fp32, and 8.x fp16) or model.mixed.onnx (fp16 where
TensorRT is strongly typed) -> artifacts/engine/<fingerprint>/model.engine plus its sidecar
model.json, build.log and timing.cache. The runtime needs only this folder. Every file is
written atomically, so Ctrl-C or a failed build leaves the previous engine intact and usable."""
import os
import time

from runtime import files
from stages.common import precisions
from stages.common.errors import ArtifactError, EngineError
from stages.device import settings as device
from stages.device.doctor import check_build_memory


def load_onnx(layout):
    """model.onnx's bytes and its sidecar, refused when the file is not the one the sidecar
    names."""
    from runtime.backends import checked_onnx_sidecar
    meta = checked_onnx_sidecar(layout.onnx_model)
    with open(layout.onnx_model, "rb") as f:
        return f.read(), meta


def precision_report(layout, meta):
    """precision.json of the precision link, or None before that link has run; refused when it was
    made from another model.onnx."""
    from stages.device.limits import precision_report as read_report
    report, same = read_report(layout, meta["onnx_sha256"])
    if report is not None and not same:
        raise ArtifactError("%s was made from another model.onnx than %s: rerun `doit precision` "
                            "on the host, or copy both from one bundle." % (
                                layout.precision_report, layout.onnx_model))
    return report


def mixed_model(layout, report, trt_version):
    if report is None or not os.path.isfile(layout.precision_model):
        raise EngineError("engine.precision is fp16 and TensorRT %s is strongly typed, so the "
                          "engine is built from %s, which is missing: run `doit precision` on the "
                          "host and copy the bundle again, or set engine.precision: fp32." % (
                              trt_version, layout.precision_model))
    with open(layout.precision_model, "rb") as f:
        data = f.read()
    if files.sha256_bytes(data) != report.get("mixed_sha256"):
        raise ArtifactError("%s does not match the mixed_sha256 in %s (damaged, or from another "
                            "run): rerun `doit precision` on the host." % (
                                layout.precision_model, layout.precision_report))
    return data


def build_source(trt, engine_cfg, layout, data, meta):
    """What the builder parses, and the fp32 islands for a weakly typed (8.x) fp16 build."""
    from stages.device import trt_precision as tp
    mode = tp.typing(trt, engine_cfg["precision"])
    source = {"onnx": data, "name": os.path.basename(layout.onnx_model), "typing": mode}
    recipe = precisions.recipe(mode)
    if not recipe.reduced:
        return source
    report = precision_report(layout, meta)
    if recipe.from_link:
        source.update(onnx=mixed_model(layout, report, trt.__version__),
                      name=os.path.basename(layout.precision_model), islands=report["islands"])
    elif report is not None:
        source["islands"] = report["islands"]
    else:  # before the precision link existed: the LayerNorm/Softmax groups of engine.keep_fp32
        source["islands"] = tp.islands_from_groups(meta.get("precision_groups", {}),
                                                   engine_cfg["keep_fp32"])
    return source


def run_build(cfg, layout):
    """The engine link (device): model.onnx or model.mixed.onnx -> this device's engine folder."""
    engine_cfg = cfg["engine"]
    from stages.device.trt_builder import build
    fp = device.fingerprint()
    if not (fp["gpu"] and fp["tensorrt"]):
        device.refuse_engine()
    # issue 15: enough RAM + swap?
    check_build_memory(layout.onnx_model, engine_cfg["workspace_mb"])
    import tensorrt as trt
    folder = device.engine_folder(layout)
    data, meta = load_onnx(layout)
    source = build_source(trt, engine_cfg, layout, data, meta)
    cache = folder.read_timing_cache() if engine_cfg["timing_cache"] else None
    previous = folder.previous_build_seconds()
    print("build_engine: %s -> %s (%s, %s typing, workspace %d MB, timing cache %s%s)" % (
        source["name"], folder.path, engine_cfg["precision"], source["typing"],
        engine_cfg["workspace_mb"],
        "saved" if cache else "new", ", previous build %d s" % previous if previous else ""))
    lines, t0 = [], time.time()
    try:
        plan, new_cache, info = build(trt, source, engine_cfg, cache, lines, previous)
    except BaseException:
        folder.write_log(lines, failed_after=time.time() - t0)
        raise
    seconds = time.time() - t0
    info["islands"] = [{"node": i["node"], "op": i["op"], "reason": i.get("reason", "")}
                       for i in source.get("islands") or []]  # and why each: precision.json
    folder.write_log(lines + summary_lines(info) + island_lines(info), seconds=seconds)
    folder.write(plan, meta, engine_cfg, device.identity(fp), info, seconds, trt.__version__,
                 new_cache if engine_cfg["timing_cache"] else None)
    print("build_engine: built in %.1f s, %.1f MB, %d network layers; %s" % (
        seconds, len(plan) / 1e6, info["layers"], "; ".join(summary_lines(info))))


def island_lines(info):
    """build.log's record of the fp32 islands the engine was built with, and why each."""
    out = ["fp32 islands: %d" % len(info["islands"])]
    return out + ["  %s %s: %s" % (i["op"], i["node"], i["reason"]) for i in info["islands"]]


def summary_lines(info):
    """The precision record in words (printed, and appended to build.log)."""
    p, out = info["precision"], []
    recipe = precisions.recipe(p["typing"])
    if recipe.pins:
        out.append("fp32 pinned: %d layers for %d islands (%s)" % (
            len(p["pinned_layers"]), p["islands"],
            ", ".join("%s %d" % kv for kv in sorted(p["pinned_by_op"].items()))))
    elif recipe.strongly_typed:
        out.append("strongly typed from %s" % info["onnx"])
    else:
        out.append("fp32 engine")
    ins = info["inspector"]
    out.append("inspector: "
               + (", ".join("%s %d" % kv for kv in sorted(ins["layers_per_precision"].items()))
                  + " engine layers" if ins["available"] else "unavailable (%s)" % ins["reason"]))
    out.append("workspace %d MB via %s%s" % (info["workspace_mb"], info["workspace_api"],
                                             " (after an out-of-memory retry)" if info["oom_retry"]
                                             else ""))
    return out
