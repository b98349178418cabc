"""engine link (device only): model.onnx -> artifacts/engine/<fingerprint>/model.engine plus its
sidecar model.json, build.log and timing.cache. The runtime needs only this folder. Every file is
written atomically, so Ctrl-C or a failed build leaves the previous engine intact and usable."""
import time

from stages.device import settings as device


def load_onnx(layout):
    """model.onnx's bytes and its sidecar, refused when the file is not the one the sidecar names."""
    from runtime.backends import checked_onnx_sidecar
    meta = checked_onnx_sidecar(layout.onnx_model)
    with open(layout.onnx_model, "rb") as f:
        return f.read(), meta


def run_build(engine_cfg, layout):
    from stages.device.trt_builder import build
    fp = device.fingerprint()
    if not (fp["gpu"] and fp["tensorrt"]):
        device.refuse_engine()
    import tensorrt as trt
    folder = device.engine_folder(layout)
    data, meta = load_onnx(layout)
    cache = folder.read_timing_cache() if engine_cfg["timing_cache"] else None
    print("build_engine: %s -> %s (%s, workspace %d MB, timing cache %s)" % (
        layout.onnx_model, folder.path, engine_cfg["precision"], engine_cfg["workspace_mb"],
        "reused" if cache else "new"))
    lines, t0 = [], time.time()
    try:
        plan, new_cache, info = build(trt, data, engine_cfg, meta.get("precision_groups", {}), cache, lines)
    finally:
        folder.write_log(lines)
    seconds = time.time() - t0
    folder.write(plan, meta, engine_cfg, device.identity(fp), info, seconds, trt.__version__,
                 new_cache if engine_cfg["timing_cache"] else None)
    pinned = info["pinned_fp32"]
    print("build_engine: built in %.1f s, %.1f MB, %d layers; %s; workspace %d MB via %s" % (
        seconds, len(plan) / 1e6, info["layers"],
        "fp32 pinned: " + ", ".join("%s %d layers" % kv for kv in sorted(pinned.items())) if pinned else "fp32 engine",
        info["workspace_mb"], info["workspace_api"]))
