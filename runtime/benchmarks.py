"""Side-by-side timings for `doit bench`: post-processing with every class at every pixel (full)
vs the early-out, on the GPU and on the CPU, alternated in one run so both see the same machine
state. (Stream FPS, sequential vs pipelined: runtime.stream.compare_modes.)"""
import time

import numpy as np

from runtime import reference


def summary(ms):
    a = np.asarray(ms, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "mean": float(a.mean()), "n": int(a.size)}


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


def gpu_post(gpu, n=100, warmup=10, batch=20, lead=20):
    """GPU kernels on the pipeline's current logits and frame size: full vs early-out, and whether
    the masks match. Kernel time: CUDA events around `batch` back-to-back calls, per call, queued
    behind `lead` calls of the full kernel, so the GPU is still busy with those while the host
    enqueues the timed ones and the events time the GPU's work alone, as when post-processing is
    queued behind inference. Beside it: host_ms, the host's time to enqueue one call (Python and
    pycuda), and gpu_bound, the share of batches enqueued before the GPU had finished the lead."""
    drv = gpu.drv
    ahead, start, end = drv.Event(), drv.Event(), drv.Event()
    host, bound = {"full": [], "early": []}, []

    def kernel(name):
        def timed():
            ahead.record(gpu.stream)
            for _ in range(lead):
                gpu.postprocess(early=False)
            start.record(gpu.stream)
            t0 = time.perf_counter()
            for _ in range(batch):
                gpu.postprocess(early=name == "early")
            enqueue_ms = 1000.0 * (time.perf_counter() - t0)
            end.record(gpu.stream)
            end.synchronize()
            host[name].append(enqueue_ms / batch)
            bound.append(enqueue_ms < start.time_since(ahead))
            return end.time_since(start) / batch
        return timed

    ms = alternate({"full": kernel("full"), "early": kernel("early")}, n, warmup)
    res = dict((k + "_ms", summary(v)) for k, v in ms.items())
    res.update((k + "_host_ms", summary(v[warmup:])) for k, v in host.items())
    res["gpu_bound"] = float(np.mean(bound[2 * warmup:]))
    res["speedup"] = res["full_ms"]["p50"] / res["early_ms"]["p50"]
    tile = gpu.frame.tile
    res["early_kernel"] = "per-pixel" if tile is None else "tiles of %dx%d pixels" % tile[0]
    gpu.postprocess(early=False)
    full = gpu.download_mask()
    gpu.postprocess(early=True)
    res["identical"] = bool(np.array_equal(full, gpu.download_mask()))
    return res


def resized_logits(logits, hw=(128, 128)):
    """Logits (1xCxhxw) bilinearly resized to hw: a model's real logits at another output size,
    e.g. a 256x256-input model's 64x64 golden logits as a 512x512-input model's 128x128 (whose
    region boundaries are as few as the real ones, unlike independent random noise)."""
    import cv2
    chw = np.asarray(logits, np.float32).reshape(np.shape(logits)[-3:])
    return np.stack([cv2.resize(c, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
                     for c in chw])[None]
