"""Device run for issue 16, the tiled early-out (one launch): GPU post-processing at 1080p, full
vs early-out, fp32 and fp16, on three logits: the bench's synthetic 35x128x128 (random 16x16
noise upscaled: far more class boundaries than a model's), realistic 35x128x128 (the street
example's golden logits from this repository's model, 35x64x64, bilinearly resized to 128x128 as
a 512x512-input model's output would be) and those golden 35x64x64 logits as they are. Also the
per-pixel early-out (before the tiles), a tile-shape sweep, and the same timing not queued behind
the full kernel (then the host's launch overhead shows). Run from the repository root with the
golden logits under artifacts/golden; writes $OUT/issue16-tiles-bench.json."""
import glob
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.getcwd()
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from runtime import benchmarks, reference  # noqa: E402
from runtime.cuda_ops import Kernels, arch  # noqa: E402
from runtime.gpu_pipeline import GpuPipeline  # noqa: E402
from stages.device.bench import synthetic_case  # noqa: E402
from stages.device.runtime_check import compile_kernels  # noqa: E402
from test_gpu_kernels import meta  # noqa: E402

kdir = tempfile.mkdtemp()
compile_kernels(kdir, arch())
K = Kernels(kdir)
golden = np.load(sorted(glob.glob("artifacts/golden/00_*/logits.npy"))[0])
CASES = [("bench_synthetic_35x128x128", synthetic_case()[1]),
         ("street_golden_resized_35x128x128", benchmarks.resized_logits(golden, (128, 128))),
         ("street_golden_35x64x64", golden)]
out = {"device": __import__("pycuda.driver", fromlist=["Context"]).Context.get_device().name()}


def cell_stats(logits):
    """Share of uniform cells, and the mean number of candidate classes in the other cells."""
    chw = np.asarray(logits[0], np.float32)
    _, uniform, big = reference.cell_map(chw)
    r, c = np.nonzero(~uniform)
    _, can = reference.candidates(np.ascontiguousarray(chw.transpose(1, 2, 0)), r, c, big[r, c])
    return {"uniform_cells": float(uniform.mean()), "mixed_cells": int(len(r)),
            "candidates_per_mixed_cell": float(can.sum(axis=1).mean()) if len(r) else 0.0}


def post(logits, dtype, tiles=None, **kw):
    extra = {} if tiles is None else {"tiles": tiles}
    g = GpuPipeline(K, meta(logits_shape=logits.shape), output_dtype=dtype, **extra)
    g.upload(np.zeros((1080, 1920, 3), np.uint8))
    g.upload_logits(logits)
    return benchmarks.gpu_post(g, **kw)


def line(name, r):
    print("%-58s full %6.1f us  early %6.1f us  (%.2fx)  identical %s  host %.1f us/call  "
          "gpu_bound %.2f  %s" % (
        name, 1000 * r["full_ms"]["p50"], 1000 * r["early_ms"]["p50"], r["speedup"], r["identical"],
        1000 * r["early_host_ms"]["p50"], r["gpu_bound"], r["early_kernel"]), flush=True)


if os.environ.get("PROFILE"):  # a few launches for Nsight Compute: `PROFILE=1 ncu ... python3 this`
    for name, logits in CASES[:2]:
        g = GpuPipeline(K, meta(logits_shape=logits.shape))
        g.upload(np.zeros((1080, 1920, 3), np.uint8))
        g.upload_logits(logits)
        for early in (True, False):
            g.postprocess(early=early)
        g.download_mask()
    sys.exit(0)
for name, logits in CASES:
    out[name] = {"cells": cell_stats(logits)}
    print(name, out[name]["cells"], flush=True)
    for dt in (np.float32, np.float16):
        r = out[name][np.dtype(dt).name] = post(logits, dt, n=200, warmup=20)
        line("%s %s" % (name, np.dtype(dt).name), r)
for name, logits in CASES[:2]:
    r = out[name]["per_pixel_early_out_float32"] = post(logits, np.float32, tiles=(), n=100,
                                                        warmup=10)
    line("%s float32, per-pixel early-out (no tiles)" % name, r)
    r = out[name]["not_queued_float32"] = post(logits, np.float32, n=100, warmup=10, lead=0)
    line("%s float32, not queued (lead=0)" % name, r)
    sweep = out[name]["tile_sweep_float32"] = {}
    for shape in ((256, 16), (128, 16), (256, 8), (512, 8), (128, 32), (256, 32)):
        r = post(logits, np.float32, tiles=(shape,), n=100, warmup=10)
        sweep["%dx%d" % shape] = r
        line("%s float32, tiles %dx%d" % ((name,) + shape), r)
json.dump(out, open(os.path.join(os.environ.get("OUT", "/tmp"), "issue16-tiles-bench.json"), "w"),
          indent=1)
