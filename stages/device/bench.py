"""doit bench: N timed iterations after a warm-up, per stage p50/p90/p99 and FPS, plus ratios
measured side by side in the same run: GPU kernels vs the CPU reference ops (1920x1080 image,
35-class 128x128 logits) and, on a host with torch, ONNX Runtime vs PyTorch eager on the CPU.
Writes artifacts/bench/<device-slug>.json."""
import os
import time

import numpy as np

from stages.device import settings as device
from stages.common import files

TARGETS = {"postprocess_speedup_min": 30.0, "preprocess_speedup_min": 10.0,
           "prepost_share_of_engine_max": 0.05,
           "onnxruntime_vs_torch_min": 1.0}


def percentiles(samples):
    a = np.asarray(samples, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def timed(fn, n, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(1000.0 * (time.perf_counter() - t0))
    return out


def pipeline_bench(seg, image_path, n, warmup):
    """Per-stage times of the full runtime on one image, read from disk every iteration."""
    from runtime.images import read_image
    stages = {}
    for i in range(warmup + n):
        t0 = time.perf_counter()
        image = read_image(image_path)
        read_ms = 1000.0 * (time.perf_counter() - t0)
        t1 = time.perf_counter()
        result = seg.segment(image)
        total = read_ms + 1000.0 * (time.perf_counter() - t1)
        if i >= warmup:
            for k, v in list(result.timings.items()) + [("read", read_ms), ("total", total)]:
                stages.setdefault(k, []).append(v)
    out = dict((k, percentiles(v)) for k, v in stages.items())
    out["fps"] = 1000.0 / out["total"]["p50"]
    return out


def synthetic_case(classes=35, size=(1080, 1920), logits_hw=(128, 128), seed=0):
    """A 1080p BGR frame and smooth 35x128x128 logits, as from a real SegFormer-B4 at 512x512."""
    import cv2
    rng = np.random.RandomState(seed)
    image = cv2.resize(rng.randint(0, 256, (68, 120, 3)).astype(np.uint8), (size[1], size[0]),
                       interpolation=cv2.INTER_CUBIC)
    small = rng.randn(classes, 16, 16).astype(np.float32) * 4
    logits = np.stack([cv2.resize(c, logits_hw[::-1], interpolation=cv2.INTER_CUBIC)
                       for c in small])[None]
    return image, logits


def kernel_ratios(layout, n, warmup, engine_infer_ms=None):
    """GPU pre/post kernels vs the CPU reference path, alternated in one run (or None without a
    GPU)."""
    from stages.device.select import kernels_for_this_gpu
    kernels = kernels_for_this_gpu(layout, required=False)
    if kernels is None:
        return None
    from runtime import reference
    from runtime.gpu_pipeline import GpuPipeline
    image, logits = synthetic_case()
    meta = {"input": {"shape": [1, 3, 512, 512]}, "output": {"shape": list(logits.shape)},
            "palette": [[0, 0, 0]] * logits.shape[1],
            "preprocess": {"scale": 1 / 255.0, "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225], "pass_order": "pillow13"}}
    gpu = GpuPipeline(kernels, meta)
    gpu.upload_logits(logits)
    gpu.upload(image)
    sync = gpu.stream.synchronize

    def run(*steps):
        def fn():
            for step in steps:
                step()
            sync()
        return fn

    pre = meta["preprocess"]
    res = {"image": "1920x1080", "logits": "x".join(map(str, logits.shape)),
           "gpu_upload_ms": percentiles(timed(run(lambda: gpu.upload(image)), n, warmup)),
           "gpu_preprocess_ms": percentiles(timed(run(gpu.preprocess), n, warmup)),
           "gpu_postprocess_ms": percentiles(timed(run(gpu.postprocess), n, warmup)),
           "gpu_download_ms": percentiles(timed(gpu.download_mask, n, warmup)),
           "cpu_preprocess_ms": percentiles(timed(lambda: reference.preprocess(
               image, 512, 512, pre["mean"], pre["std"], pre["scale"]), max(3, n // 5), 1)),
           "cpu_postprocess_ms": percentiles(timed(lambda: reference.upsample_argmax(
               logits, 1080, 1920), max(3, n // 5), 1))}
    p50 = dict((k, v["p50"]) for k, v in res.items() if k.endswith("_ms"))
    res["preprocess_speedup"] = p50["cpu_preprocess_ms"] / (p50["gpu_upload_ms"]
                                                            + p50["gpu_preprocess_ms"])
    res["postprocess_speedup"] = p50["cpu_postprocess_ms"] / (p50["gpu_postprocess_ms"]
                                                              + p50["gpu_download_ms"])
    res["speedups_include"] = ("the GPU side includes the image upload (pre) and the mask download "
                               "(post)")
    if engine_infer_ms:
        res["prepost_share_of_engine"] = ((p50["gpu_preprocess_ms"] + p50["gpu_postprocess_ms"])
                                          / engine_infer_ms)
    # issue 16: the early-out vs every class at every pixel, same run
    from runtime import benchmarks
    res["gpu_postprocess_early_vs_full"] = benchmarks.gpu_post(gpu, n=max(20, n), warmup=5)
    real = realistic_logits(layout)
    if real is not None:
        gpu.upload_logits(real)
        res["gpu_postprocess_early_vs_full_realistic"] = benchmarks.gpu_post(gpu, n=max(20, n),
                                                                             warmup=5)
    return res


def realistic_logits(layout):
    """The model's own logits on the first golden image, resized to 128x128 as a 512x512-input
    model gives them: as few region boundaries as a real scene (the synthetic case has many more).
    None where the golden files are absent."""
    from runtime.benchmarks import resized_logits
    from runtime.golden import load_case, read_index
    if not os.path.isfile(layout.golden_json):
        return None
    return resized_logits(load_case(read_index(layout.golden_json)[0])[1])


def stream_fps(seg, image_path, frames):
    """issue 16: doit infer's stream (read + segment + overlay + mask PNG and overlay JPEG written),
    sequential vs pipelined over the same frames (the bench image, shifted a little each frame)."""
    import shutil
    import tempfile
    from runtime.images import read_image
    from runtime.stream import compare_modes
    from stages.device.infer import write_outputs
    out = tempfile.mkdtemp(prefix="bench-stream-")

    def make_frames():
        return (np.roll(read_image(image_path), 8 * i, axis=1) for i in range(frames))
    try:
        return compare_modes(make_frames, lambda im: seg.segment(im, overlay_alpha=0.5),
                             lambda im, r: None,
                             digest=lambda r: r.mask.tobytes() + r.overlay.tobytes(),
                             side=lambda im, r: write_outputs(seg, r, out, "%d" % id(r),
                                                              {"mode": "both"}))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_bench(cfg, layout, cpu_compare=None, fold_compare=None):
    """cpu_compare: "module:function" of the host wing's ONNX Runtime vs PyTorch comparison
    (dodo names it on a host with torch), or None on the device."""
    from stages.device import doctor
    from stages.device.select import describe, open_runtime
    n, warmup = cfg["bench"]["iterations"], cfg["bench"]["warmup"]
    conditions = doctor.bench_conditions(layout, cfg["engine"])
    warning = doctor.jetson_clocks_warning(conditions)
    if warning:
        print(warning)
    t0 = time.perf_counter()
    seg = open_runtime(layout, cfg["bench"]["backend"])
    load_ms = 1000.0 * (time.perf_counter() - t0)
    fp = device.fingerprint()
    report = {"device": fp, "runtime": describe(seg), "image": cfg["bench"]["image"],
              "iterations": n,
              "warmup": warmup, "targets": TARGETS, "load_ms": load_ms, "conditions": conditions}
    report["pipeline"] = pipeline_bench(seg, cfg["bench"]["image"], n, warmup)
    engine_ms = report["pipeline"]["infer"]["p50"] if seg.backend.needs_engine else None
    report["kernels_vs_cpu"] = kernel_ratios(layout, n, warmup, engine_ms)
    # issue 16: CPU post full vs early-out, stream sequential vs pipelined
    from runtime import benchmarks
    report["cpu_postprocess_early_vs_full"] = benchmarks.cpu_post(synthetic_case()[1], 1080, 1920,
                                                                  n=max(3, n // 10))
    report["stream"] = stream_fps(seg, cfg["bench"]["image"], max(10, n))
    if seg.backend.needs_engine:
        report["trtexec"] = doctor.trtexec_crosscheck(seg.backend.source, n)
    if cpu_compare is not None and cfg["bench"]["cpu"] and os.path.isfile(layout.manifest):
        from stages.common.actions import resolve
        report["cpu_backends"] = resolve(cpu_compare)(cfg, layout, max(5, n // 2), 2)
    if fold_compare is not None and os.path.isfile(layout.onnx_sidecar):  # issue 22, host only
        from stages.common.actions import resolve
        report["fold"] = resolve(fold_compare)(cfg, layout, max(5, n // 2), 2)
    path = os.path.join(layout.bench_dir, device.slug(fp) + ".json")
    files.write_json(path, report)
    print_summary(report, path)


def print_summary(r, path):
    p = r["pipeline"]
    print("bench: %s, pre/post on the %s, %s, %d iterations" % (
        r["runtime"]["backend"], r["runtime"]["pre_post"].upper(), r["image"], r["iterations"]))
    for k in sorted(k for k in p if k != "fps"):
        print("  %-12s p50 %8.2f  p90 %8.2f  p99 %8.2f ms" % (
            k, p[k]["p50"], p[k]["p90"], p[k]["p99"]))
    print("  FPS (p50 of total): %.1f; loading the model (deserialize, buffers, kernels) took "
          "%.0f ms" % (p["fps"], r["load_ms"]))
    k = r.get("kernels_vs_cpu")
    if k:
        print("  GPU vs CPU at %s, logits %s: preprocess %.1fx, postprocess %.1fx faster (with "
              "transfers)" % (
                  k["image"], k["logits"], k["preprocess_speedup"], k["postprocess_speedup"]))
        if "prepost_share_of_engine" in k:
            print("  GPU pre+post kernels = %.1f%% of engine inference" % (
                100 * k["prepost_share_of_engine"]))
    g, c, st = ((k or {}).get("gpu_postprocess_early_vs_full"), r["cpu_postprocess_early_vs_full"],
                r["stream"])
    gr = (k or {}).get("gpu_postprocess_early_vs_full_realistic")
    for where, e in (("GPU", g), ("GPU, golden logits at 128x128", gr), ("CPU", c)):
        if e:
            print("  post-processing on the %s, 1080p: full p50 %.3f ms, early-out %.3f ms "
                  "(%.1fx), masks %s" % (
                      where, e["full_ms"]["p50"], e["early_ms"]["p50"], e["speedup"],
                      "identical" if e["identical"] else "DIFFER"))
    print("  stream (%d frames): sequential %.1f FPS, pipelined %.1f FPS (%.2fx), outputs %s" % (
        st["pipelined"]["frames"], st["sequential"]["fps"], st["pipelined"]["fps"], st["speedup"],
        "identical" if st["identical"] else "DIFFER"))
    t = r.get("trtexec")
    if t and "gpu_compute_median_ms" in t:
        print("  trtexec --loadEngine (TensorRT's own timing): GPU compute median %.2f ms vs this "
              "runtime's infer p50 %.2f ms" % (t["gpu_compute_median_ms"], p["infer"]["p50"]))
    elif t:
        print("  trtexec cross-check failed: %s" % t.get("error"))
    cond = r["conditions"]
    print("  conditions: %s, power mode %s, jetson_clocks %s, temperatures %s" % (
        cond.get("board") or "not a Jetson", cond.get("power_mode"), cond.get("jetson_clocks"),
        cond.get("temperatures_c") or "-"))
    c = r.get("cpu_backends")
    if c:
        print("  CPU: ONNX Runtime p50 %.1f ms vs PyTorch eager %.1f ms (%.2fx)" % (
            c["onnxruntime_ms"]["p50"], c["torch_eager_ms"]["p50"], c["onnxruntime_vs_torch"]))
    if r.get("fold"):
        print("  " + r["fold"].get("summary", r["fold"].get("error", "")))
    print("bench: wrote %s" % path)
