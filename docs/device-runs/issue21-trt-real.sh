#!/usr/bin/env bash
# Issue 21 on the GPU test machine (NVIDIA H100, CUDA 13): the real-builder tests through
# TensorRT-RTX 1.7.1, then every `gpu`-marked test, logs teed to $OUT.
#
# Needs, before this command (the machine keeps /tmp only while warm):
#   - TensorRT-RTX installed at /tmp/site by ../shared/device-wheels/tensorrt-rtx/README.md's three
#     commands (the libs wheel in three parts, then `pip install --target /tmp/site`);
#   - .devwheels/ (carried, git-ignored) with ../shared/device-wheels/*.whl: pycuda, doit,
#     onnxsim, onnxconverter-common, mako, platformdirs, pytools, siphash24 (cp312);
#   - torch, transformers, onnx and onnxruntime as preinstalled there.
# Run from the repository root:  bash docs/device-runs/issue21-trt-real.sh
# Writes: $OUT/issue21-trt-real.log, $OUT/issue21-trt-real.jsonl (one line per build),
#         $OUT/issue21-gpu-tests.log, $OUT/issue21-chain.log, $OUT/issue21-ptxas-sm_90.log
# --rtx-only: step 1 alone; --gpu-only: steps 2 and 3 alone (no TensorRT-RTX needed).
set -o pipefail
O=${OUT:-/tmp/out}
MODE=${1:-all}
mkdir -p "$O"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devwheels/*.whl \
    || { echo "issue21: carry .devwheels/ (../shared/device-wheels/*.whl)" >&2; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
[ "$MODE" = --gpu-only ] || python3 -c "import tensorrt_rtx_bindings as t; print('TensorRT-RTX', t.__version__)" \
    2>&1 | tee "$O/issue21-trt-real.log" || {
    echo "issue21: TensorRT-RTX is not at /tmp/site: run the tensorrt-rtx README's steps first" >&2
    exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv | tee -a "$O/issue21-trt-real.log"

if [ "$MODE" != --gpu-only ]; then
# 1. the real-builder tests (preparation through the chain's checkout/export, then the builds)
rm -f "$O/issue21-trt-real.jsonl"
TRT_RUN_LOG=$O/issue21-trt-real.jsonl python3 -m pytest -q -rs -m tensorrt tests/test_trt_real.py \
    -p no:cacheprovider 2>&1 | tee -a "$O/issue21-trt-real.log"
# and the preparation tests on the same machine (embedded and B4)
python3 -m pytest -q -rs -m "host" tests/test_trt_real.py -p no:cacheprovider 2>&1 \
    | tee -a "$O/issue21-trt-real.log"
fi
[ "$MODE" = --rtx-only ] && { tail -3 "$O/issue21-trt-real.log"; exit 0; }

# 2. the host chain (artifacts for the golden-logits and TensorRT-double GPU tests), then every
#    gpu-marked test
python3 -m doit 2>&1 | tee "$O/issue21-chain.log"
python3 -m pytest -q -rs -m gpu tests/ -p no:cacheprovider 2>&1 | tee "$O/issue21-gpu-tests.log"

# 3. the H100's own register/spill report of the kernels (sm_90 keeps five blocks per SM for the
#    tiled early-out; the Jetson archs are tools/kernel_gate.py's)
for k in runtime/kernels/*.cu; do
    nvcc -cubin -arch=sm_90 -O3 -Xptxas -v -o /tmp/k.cubin "$k"
done > "$O/issue21-ptxas-sm_90.log" 2>&1
grep -E "entry function|spill|Used" "$O/issue21-ptxas-sm_90.log" | tail -30
tail -3 "$O/issue21-trt-real.log" "$O/issue21-gpu-tests.log"
