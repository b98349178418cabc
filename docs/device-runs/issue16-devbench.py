"""Device run for issue 16: GPU post full vs early-out, CPU post today/full/early, and the
pipelined stream on a 1080p video through real kernels + real pycuda + the TensorRT double
(ONNX Runtime on the CPU inside: its 'infer' is ONNX Runtime's, not TensorRT's)."""
import json, os, shutil, sys, tempfile, time
import numpy as np, cv2
ROOT = os.getcwd(); sys.path.insert(0, ROOT); sys.path.insert(0, os.path.join(ROOT, "tests"))
from runtime import benchmarks, reference
from runtime.stream import compare_modes
out = {}
def legacy(logits, out_h, out_w):  # the CPU reference before issue 16 (cv2.resize per 4 classes)
    hwc = np.ascontiguousarray(
        np.asarray(logits, np.float32).reshape(logits.shape[-3:]).transpose(1, 2, 0))
    best = np.full((out_h, out_w), -np.inf, np.float32); mask = np.zeros((out_h, out_w), np.uint8)
    for s in range(0, hwc.shape[2], 4):
        part = cv2.resize(np.ascontiguousarray(hwc[:, :, s:s + 4]), (out_w, out_h),
                          interpolation=cv2.INTER_LINEAR)
        part = part.reshape(out_h, out_w, -1)
        for k in range(part.shape[2]):
            better = part[:, :, k] > best
            best[better] = part[:, :, k][better]
            mask[better] = s + k
    return mask
rng = np.random.RandomState(0)
small = rng.randn(35, 16, 16).astype(np.float32) * 4   # stages/device/bench.py synthetic_case
bench_logits = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_CUBIC)
                         for c in small])[None]
golden = np.load(sorted(__import__("glob").glob("artifacts/golden/00_*/logits.npy"))[0])
DRY = os.environ.get("DRY")
if DRY:
    raise_gpu = None
from runtime.cuda_ops import Kernels, arch
from stages.device.runtime_check import compile_kernels
from runtime.gpu_pipeline import GpuPipeline
from test_gpu_kernels import meta
kdir = tempfile.mkdtemp(); compile_kernels(kdir, arch()); K = Kernels(kdir)
for name, L in (("bench_synthetic_35x128x128", bench_logits),
                ("street_golden_" + "x".join(map(str, golden.shape)), golden)):
    for dt in (np.float32, np.float16):
        g = GpuPipeline(K, meta(logits_shape=L.shape), output_dtype=dt)
        g.upload(np.zeros((1080, 1920, 3), np.uint8)); g.upload_logits(L)
        out["gpu_post_%s_%s" % (name, np.dtype(dt).name)] = benchmarks.gpu_post(g, n=300, warmup=30)
    cpu = benchmarks.cpu_post(L, 1080, 1920, n=7, today=legacy)
    _, uni, _ = reference.cell_map(np.asarray(L[0], np.float32))
    cpu["uniform_cells"] = float(uni.mean())
    out["cpu_post_" + name] = cpu
cv2.setNumThreads(1)
out["cpu_post_bench_synthetic_cv2_1thread"] = benchmarks.cpu_post(bench_logits, 1080, 1920, n=5,
                                                                  today=legacy)
cv2.setNumThreads(-1)
print(json.dumps({k: {a: (b["p50"] if isinstance(b, dict) else b) for a, b in v.items()}
                  for k, v in out.items()}, indent=1), flush=True)
# the stream: TRT double + real kernels, 120-frame 1080p video from the street example
from stages.common.config import load
from stages.common.layout import Layout
from stages.device import engine
from stages.device.select import open_runtime
from runtime.segmenter import Segmenter
from runtime.files import write_bytes
from runtime.palette import encode_mask_png
tmp = tempfile.mkdtemp(); cfg = load(); cfg["artifacts"] = os.path.join(tmp, "artifacts")
L = Layout(cfg)
shutil.copytree("artifacts/onnx", L.onnx_dir); shutil.copytree("artifacts/golden", L.golden_dir)
engine.run_build(cfg["engine"], L)
seg = Segmenter(open_runtime(L, "tensorrt", pre_post="cpu").backend, K)
street = cv2.imread("examples/street_1920x1080.jpg")
video = os.path.join(tmp, "street.mp4")
vw = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1920, 1080))
for i in range(120):
    vw.write(np.roll(street, 12 * i, axis=1))
vw.release()
def frames():
    if "vw" in state:
        state.pop("vw").release()
    cap = cv2.VideoCapture(video)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()
state = {}
def write(frame, result):  # ordered: the annotated video
    if "vw" not in state:
        state["vw"] = cv2.VideoWriter(os.path.join(tmp, "o%d.mp4" % time.time()),
                                      cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1920, 1080))
    state["vw"].write(result.overlay)
counter = {"i": 0}
def side(frame, result):  # per frame: the mask PNG (doit infer mode=both)
    write_bytes(os.path.join(tmp, "masks", "%d_mask.png" % id(result)),
                encode_mask_png(result.mask, seg.palette))
os.makedirs(os.path.join(tmp, "masks"))
seg.segment(street, overlay_alpha=0.5)
rep = compare_modes(frames, lambda f: seg.segment(f, overlay_alpha=0.5), write,
                    digest=lambda r: r.mask.tobytes() + r.overlay.tobytes(), side=side)
t0 = time.perf_counter(); fr = list(frames()); t1 = time.perf_counter()
r = [seg.segment(f, overlay_alpha=0.5) for f in fr[:30]]; t2 = time.perf_counter()
for x in r: side(None, x)
t3 = time.perf_counter()
for x in r: write(None, x)
t4 = time.perf_counter()
rep["stage_ms_per_frame"] = {"decode": 1000 * (t1 - t0) / len(fr), "segment": 1000 * (t2 - t1) / 30,
                             "mask_png": 1000 * (t3 - t2) / 30,
                             "video_write": 1000 * (t4 - t3) / 30}
state["vw"].release()
rep["backend"] = seg.backend.describe(); rep["pre_post"] = seg.pre_post
rep["note"] = "real CUDA kernels + real pycuda + the TensorRT test double (ONNX Runtime CPU inside)"
out["stream"] = rep
print(json.dumps(rep, indent=1, default=str), flush=True)
json.dump(out, open(os.path.join(os.environ.get("OUT", "/tmp"), "issue16-bench.json"), "w"),
          indent=1, default=str)
