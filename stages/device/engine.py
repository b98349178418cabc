"""engine link (device only): model.onnx -> artifacts/engine/<fingerprint>/model.engine plus its
sidecar model.json, build.log and timing.cache. The runtime needs only this folder. Every file is
written atomically, so Ctrl-C or a failed build leaves the previous engine intact and usable."""
import os
import time

from stages.device import settings as device
from stages.common import files
from stages.common.errors import EngineError


def load_onnx(layout):
    from runtime import sidecar
    meta = sidecar.load(layout.onnx_sidecar)
    with open(layout.onnx_model, "rb") as f:
        data = f.read()
    if files.sha256_bytes(data) != meta["onnx_sha256"]:
        raise EngineError("%s does not match the sha256 in %s: copy both from the same `doit onnx` run (or the "
                          "same bundle)." % (layout.onnx_model, layout.onnx_sidecar))
    return data, meta


def engine_sidecar(meta, settings, fp, info, plan, seconds, trt_version):
    out = dict(meta)
    out.pop("precision_groups", None)
    out["engine"] = {"file": "model.engine", "precision": settings["precision"], "settings": settings,
                     "device": device.identity(fp), "tensorrt": trt_version, "sha256": files.sha256_bytes(plan),
                     "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "build_seconds": round(seconds, 1), "build": info}
    return out


def run_build(engine_cfg, layout):
    from stages.device.trt_builder import build
    fp = device.fingerprint()
    if not (fp["gpu"] and fp["tensorrt"]):
        device.refuse_engine()
    import tensorrt as trt
    folder = layout.engine_dir(device.slug(fp))
    data, meta = load_onnx(layout)
    cache_path = os.path.join(folder, "timing.cache")
    cache = None
    if engine_cfg["timing_cache"] and os.path.isfile(cache_path):
        with open(cache_path, "rb") as f:
            cache = f.read()
    print("build_engine: %s -> %s (%s, workspace %d MB, timing cache %s)" % (
        layout.onnx_model, folder, engine_cfg["precision"], engine_cfg["workspace_mb"],
        "reused" if cache else "new"))
    lines, t0 = [], time.time()
    try:
        plan, new_cache, info = build(trt, data, engine_cfg, meta.get("precision_groups", {}), cache, lines)
    finally:
        files.write_text(os.path.join(folder, "build.log"), "\n".join(lines) + "\n")
    seconds = time.time() - t0
    files.write_bytes(os.path.join(folder, "model.engine"), plan)
    files.write_json(os.path.join(folder, "model.json"),
                     engine_sidecar(meta, engine_cfg, fp, info, plan, seconds, trt.__version__))
    if engine_cfg["timing_cache"]:
        files.write_bytes(cache_path, new_cache)
    pinned = info["pinned_fp32"]
    print("build_engine: built in %.1f s, %.1f MB, %d layers; %s; workspace %d MB via %s" % (
        seconds, len(plan) / 1e6, info["layers"],
        "fp32 pinned: " + ", ".join("%s %d layers" % kv for kv in sorted(pinned.items())) if pinned else "fp32 engine",
        info["workspace_mb"], info["workspace_api"]))
