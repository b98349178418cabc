"""Side-by-side timings for `doit bench`: post-processing with every class at every pixel (full)
vs the early-out, on the GPU and on the CPU, alternated in one run so both see the same machine
state. (Stream FPS, sequential vs pipelined: runtime.stream.compare_modes.)"""
import time

import numpy as np

from runtime import reference


def summary(ms):
    a = np.asarray(ms, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "mean": float(a.mean()),
            "n": int(a.size)}


def alternate(fns, n, warmup):
    """Run each named function n times (after warm-up), interleaved; milliseconds per name."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out = dict((name, []) for name in fns)
    for _ in range(n):
        for name, fn in fns.items():
            out[name].append(fn())
    return out


def _wall(fn):
    def timed():
        t0 = time.perf_counter()
        fn()
        return 1000.0 * (time.perf_counter() - t0)
    return timed


def cpu_post(logits, out_h, out_w, n=5, warmup=1, today=None):
    """CPU reference: full vs early-out (and `today`, another implementation, when given)."""
    fns = {"full": _wall(lambda: reference.upsample_argmax_full(logits, out_h, out_w)),
           "early": _wall(lambda: reference.upsample_argmax(logits, out_h, out_w))}
    if today is not None:
        fns["today"] = _wall(lambda: today(logits, out_h, out_w))
    ms = alternate(fns, n, warmup)
    res = dict((k + "_ms", summary(v)) for k, v in ms.items())
    res["speedup"] = res["full_ms"]["p50"] / res["early_ms"]["p50"]
    if today is not None:
        res["speedup_vs_today"] = res["today_ms"]["p50"] / res["early_ms"]["p50"]
    res["identical"] = bool(np.array_equal(reference.upsample_argmax_full(logits, out_h, out_w),
                                           reference.upsample_argmax(logits, out_h, out_w)))
    return res


def gpu_post(gpu, n=100, warmup=10, batch=20):
    """GPU kernels on the pipeline's current logits and frame size: full vs early-out. Kernel
    time from CUDA events around `batch` back-to-back launches (so Python's launch overhead
    hides behind the GPU's work), per launch; no transfers. And whether the masks match."""
    drv = gpu.drv
    start, end = drv.Event(), drv.Event()

    def kernel(early):
        def timed():
            start.record(gpu.stream)
            for _ in range(batch):
                gpu.postprocess(early=early)
            end.record(gpu.stream)
            end.synchronize()
            return end.time_since(start) / batch
        return timed

    ms = alternate({"full": kernel(False), "early": kernel(True)}, n, warmup)
    res = dict((k + "_ms", summary(v)) for k, v in ms.items())
    res["speedup"] = res["full_ms"]["p50"] / res["early_ms"]["p50"]
    gpu.postprocess(early=False)
    full = gpu.download_mask()
    gpu.postprocess(early=True)
    res["identical"] = bool(np.array_equal(full, gpu.download_mask()))
    return res
