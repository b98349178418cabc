#!/usr/bin/env bash
# Issue 22 on the GPU test machine: real TensorRT-RTX builds (fp32, and strongly typed fp16 from
# the mixed graph) of the unfolded, folded and folded+LayerNormalization (opset 17) graphs of the
# embedded model (256x256) and of a SegFormer-B4-size checkout (random weights, 512x512, 35
# labels), through the project's own builder (stages/device/trt_builder.py). Per build: network
# layers, plan size, build seconds, MACs and ONNX node count, the islands' parsed types.
#
# The graphs are exported ON the device machine inside the test run (its python3 has torch and
# transformers, KINDS.md), so no ONNX file is carried (the B4 ONNX is ~256 MB, over the 64 MiB
# carry limit). Carry: .devwheels (onnxsim, onnxconverter-common, as for final-run.sh) and the
# TensorRT-RTX wheels and libraries of shared/device-wheels/tensorrt-rtx (its README's recipe,
# as for docs/device-runs/tensorrt-rtx-builds.md).
# Run from the repository root:  bash docs/device-runs/issue22-rtx-fold.sh
# Writes $OUT/issue22-rtx-fold.log and $OUT/issue22-rtx-fold.jsonl (one JSON line per record).
set -o pipefail
O=${OUT:-/tmp/out}
mkdir -p "$O"
PIP="python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site"
$PIP .devwheels/*.whl || exit 1
if ls shared/device-wheels/tensorrt-rtx/*.whl >/dev/null 2>&1; then
  $PIP shared/device-wheels/tensorrt-rtx/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import tensorrt_rtx_bindings as t; print('TensorRT-RTX', t.__version__)" 2>/dev/null \
  || python3 -c "import tensorrt as t; print('TensorRT', t.__version__)" \
  || { echo "no real TensorRT-RTX (or TensorRT) module imports:" \
       "follow shared/device-wheels/tensorrt-rtx/README.md"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv | tee "$O/issue22-rtx-fold.log"
rm -f "$O/issue22-rtx-fold.jsonl"
TRT_RUN_LOG=$O/issue22-rtx-fold.jsonl python3 -m pytest -m tensorrt \
  tests/test_trt_real_fold.py \
  -v -s -p no:cacheprovider 2>&1 | tee -a "$O/issue22-rtx-fold.log"
# the same two graphs side by side on this machine's CPU (ONNX Runtime), for the record
python3 - <<'PY' 2>&1 | tee -a "$O/issue22-rtx-fold.log"
import os, sys, tempfile, time
sys.path.insert(0, "tests")
import numpy as np, onnxruntime as ort
from fold_variants import b4_checkout, export
d = tempfile.mkdtemp()
src = b4_checkout(os.path.join(d, "b4"))
x = np.random.RandomState(0).rand(1, 3, 512, 512).astype(np.float32)
for name, fold in (("unfolded", False), ("folded", True)):
    p = os.path.join(d, name + ".onnx")
    open(p, "wb").write(export(src, 512, p, fold, 13).SerializeToString())
    s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    s.run(None, {"pixel_values": x})
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        s.run(None, {"pixel_values": x})
        t.append(time.perf_counter() - t0)
    print("b4 %s: ONNX Runtime CPU (%d cores) p50 %.0f ms" % (
        name, os.cpu_count(), 1000 * np.median(t)))
PY
