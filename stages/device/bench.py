"""doit bench: N timed iterations after a warm-up, per stage p50/p90/p99 and FPS, plus ratios
measured side by side in the same run: GPU kernels vs the CPU reference ops (1920x1080 image,
35-class 128x128 logits) and, on a host with torch, ONNX Runtime vs PyTorch eager on the CPU.
Writes artifacts/bench/<device-slug>.json."""
import os
import time

import numpy as np

from stages.device import settings as device
from stages.common import files
from stages.common.userpath import shown

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


def kernel_case():
    """The 1080p frame and 35x128x128 logits on the GPU (GpuPipeline), with the sidecar-like
    metadata the pipeline needs."""
    image, logits = synthetic_case()
    meta = {"input": {"shape": [1, 3, 512, 512]}, "output": {"shape": list(logits.shape)},
            "palette": [[0, 0, 0]] * logits.shape[1],
            "preprocess": {"scale": 1 / 255.0, "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225], "pass_order": "pillow13"}}
    return image, logits, meta


def kernel_ratios(layout, n, warmup, engine_infer_ms=None):
    """GPU pre/post kernels vs the CPU reference path, alternated in one run (or None without a
    GPU)."""
    from stages.device.select import kernels_for_this_gpu
    kernels = kernels_for_this_gpu(layout, required=False)
    if kernels is None:
        return None
    from runtime import reference
    from runtime.gpu_pipeline import GpuPipeline
    image, logits, meta = kernel_case()
    gpu = GpuPipeline(kernels, meta)
    gpu.upload_logits(logits)
    gpu.upload(image)
    pre, cpu_n = meta["preprocess"], max(3, n // 5)

    def synced(step):
        return lambda: (step(), gpu.stream.synchronize())

    res = {"image": "1920x1080", "logits": "x".join(map(str, logits.shape)),
           "gpu_upload_ms": percentiles(timed(synced(lambda: gpu.upload(image)), n, warmup)),
           "gpu_preprocess_ms": percentiles(timed(synced(gpu.preprocess), n, warmup)),
           "gpu_postprocess_ms": percentiles(timed(synced(gpu.postprocess), n, warmup)),
           "gpu_download_ms": percentiles(timed(gpu.download_mask, n, warmup)),
           "cpu_preprocess_ms": percentiles(timed(lambda: reference.preprocess(
               image, 512, 512, pre["mean"], pre["std"], pre["scale"]), cpu_n, 1)),
           "cpu_postprocess_ms": percentiles(timed(lambda: reference.upsample_argmax(
               logits, 1080, 1920), cpu_n, 1))}
    res.update(speedups(res, engine_infer_ms))
    res.update(early_out_on_gpu(gpu, layout, n))
    return res


def speedups(res, engine_infer_ms):
    """The GPU/CPU ratios from the p50s (the GPU side with its upload / download)."""
    p50 = dict((k, v["p50"]) for k, v in res.items() if k.endswith("_ms"))
    out = {"preprocess_speedup": p50["cpu_preprocess_ms"] / (p50["gpu_upload_ms"]
                                                             + p50["gpu_preprocess_ms"]),
           "postprocess_speedup": p50["cpu_postprocess_ms"] / (p50["gpu_postprocess_ms"]
                                                               + p50["gpu_download_ms"]),
           "speedups_include": ("the GPU side includes the image upload (pre) and the mask "
                                "download (post)")}
    if engine_infer_ms:
        out["prepost_share_of_engine"] = ((p50["gpu_preprocess_ms"] + p50["gpu_postprocess_ms"])
                                          / engine_infer_ms)
    return out


def early_out_on_gpu(gpu, layout, n):
    """issue 16: the early-out vs every class at every pixel, same run, on the synthetic logits
    already uploaded and on the model's own (golden) logits where they exist."""
    from runtime import benchmarks
    out = {"gpu_postprocess_early_vs_full": benchmarks.gpu_post(gpu, n=max(20, n), warmup=5)}
    real = realistic_logits(layout)
    if real is not None:
        gpu.upload_logits(real)
        out["gpu_postprocess_early_vs_full_realistic"] = benchmarks.gpu_post(
            gpu, n=max(20, n), warmup=5)
    return out


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
    files.own(out)  # made here, removed below: ours to write in

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


def scaled(n, warmup):
    """How much of each part `doit bench n=N` runs: every part scales with n, so n=5 is a quick
    look (seconds) and the default n=50 the full measurement."""
    return {"iterations": n, "warmup": min(warmup, n), "stream_frames": max(2, n),
            "cpu_post": max(1, n // 10), "cpu_post_warmup": 1 if n >= 10 else 0,
            "cpu_compare": max(1, n // 5), "cpu_compare_warmup": min(2, max(1, n // 10)),
            "fold": max(5, n // 2)}  # the fold comparison keeps its own floor (issue 22)


def part(report, name, fn, *args):
    """fn(*args), its wall time kept in report["seconds"][name] (what each part costs)."""
    t0 = time.perf_counter()
    out = fn(*args)
    report["seconds"][name] = time.perf_counter() - t0
    return out


def run_bench(cfg, layout, cpu_compare=None, fold_compare=None):
    """cpu_compare, fold_compare: "module:function" of the host wing's comparisons (dodo names
    them on a host with torch), or None on the device (host_comparisons)."""
    from runtime import benchmarks
    from stages.device import doctor, fold_engines
    from stages.device.select import describe, open_runtime
    n, image = cfg["bench"]["iterations"], cfg["bench"]["image"]
    plan = scaled(n, cfg["bench"]["warmup"])
    warmup = plan["warmup"]
    conditions = doctor.bench_conditions(layout, cfg["engine"])
    warning = doctor.jetson_clocks_warning(conditions)
    if warning:
        print(warning)
    t0 = time.perf_counter()
    seg = open_runtime(layout, cfg["bench"]["backend"])
    report = {"device": device.fingerprint(), "runtime": describe(seg), "image": image,
              "iterations": n, "warmup": warmup, "plan": plan, "targets": TARGETS,
              "load_ms": 1000.0 * (time.perf_counter() - t0), "conditions": conditions}
    report["seconds"] = {"load": report["load_ms"] / 1000.0}
    report["pipeline"] = part(report, "pipeline", pipeline_bench, seg, image, n, warmup)
    engine_ms = report["pipeline"]["infer"]["p50"] if seg.backend.needs_engine else None
    report["kernels_vs_cpu"] = part(report, "kernels", kernel_ratios, layout, n, warmup, engine_ms)
    # issue 16: CPU post full vs early-out, stream sequential vs pipelined
    report["cpu_postprocess_early_vs_full"] = part(
        report, "cpu_post", benchmarks.cpu_post, synthetic_case()[1], 1080, 1920,
        plan["cpu_post"], plan["cpu_post_warmup"])
    report["stream"] = part(report, "stream", stream_fps, seg, image, plan["stream_frames"])
    if seg.backend.needs_engine:
        report["trtexec"] = part(report, "trtexec", doctor.trtexec_crosscheck,
                                 seg.backend.source, n)
    host_comparisons(report, cfg, layout, cpu_compare, fold_compare)
    fold_engines.run_if_asked(report, cfg, layout, seg)  # issue 22: bench.compare_fold
    path = os.path.join(layout.bench_dir, device.slug(report["device"]) + ".json")
    files.write_json(path, report)
    print_summary(report, path)


def host_comparisons(report, cfg, layout, cpu_compare, fold_compare):
    """On a host with torch ("module:function" names from dodo, None on the device): ONNX
    Runtime vs PyTorch eager (bench.cpu), and the folded vs unfolded model (issue 22)."""
    from stages.common.actions import resolve
    plan = report["plan"]
    runs = (plan["cpu_compare"], plan["cpu_compare_warmup"])
    if cpu_compare is not None and cfg["bench"]["cpu"] and os.path.isfile(layout.manifest):
        report["cpu_backends"] = part(report, "cpu_backends", resolve(cpu_compare), cfg, layout,
                                      *runs)
    if fold_compare is not None and os.path.isfile(layout.onnx_sidecar):
        report["fold"] = part(report, "fold", resolve(fold_compare), cfg, layout, plan["fold"],
                              runs[1])


def print_summary(r, path):
    from stages.device.report import summary_lines
    print("\n".join(summary_lines(r) + ["bench: wrote %s" % shown(path)]))
