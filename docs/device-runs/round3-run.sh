#!/usr/bin/env bash
# The lead's batched device runs of issues 20-27 on the GPU test machine (NVIDIA H100, CUDA 13):
#   bash docs/device-runs/round3-run.sh rtx    TensorRT-RTX builds: tests/test_trt_real.py and
#                                             tests/test_trt_real_fold.py (issue21/22 scripts)
#   bash docs/device-runs/round3-run.sh gpu    every gpu-marked test, the chain, evaluate and the
#                                             hostile/OpenCV checks through the TensorRT double
#   bash docs/device-runs/round3-run.sh final  after the house (#23) merge: the RTX fold builds
#                                             again, then issue23-check.sh (GPU tests, chain and
#                                             bench through the double) and bench compare_fold=1
# Before `rtx`: TensorRT-RTX's libs wheel parts in /tmp/rtx (shared/device-wheels/tensorrt-rtx/
# README.md), the last part and the bindings wheel in .gpu-rtx/. Carry .devwheels/ for both.
set -o pipefail
O=${OUT:-/tmp/out}
mkdir -p "$O"
export PYTHONPATH=/tmp/site:$PWD PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devwheels/*.whl || exit 1
if [ "$1" = rtx ] || [ "$1" = final ]; then
  cat /tmp/rtx/*part0 /tmp/rtx/*part1 .gpu-rtx/*part2 \
    > /tmp/rtx/tensorrt_rtx_cu13_libs-1.7.1.116-py3-none-manylinux_2_28_x86_64.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    /tmp/rtx/tensorrt_rtx_cu13_libs-*-manylinux_2_28_x86_64.whl .gpu-rtx/*bindings*.whl || exit 1
  if [ "$1" = rtx ]; then
    bash docs/device-runs/issue21-trt-real.sh --rtx-only
    bash docs/device-runs/issue22-rtx-fold.sh
  else
    bash docs/device-runs/issue22-rtx-fold.sh
    bash docs/device-runs/issue23-check.sh
    python3 -m doit bundle compare_fold=1 > "$O/final-fold-engines.log" 2>&1
    PYTHONPATH=$PWD/tests/doubles/tensorrt_double:$PYTHONPATH TRT_DOUBLE_API=10 \
      python3 -m doit bench n=20 cpu=0 backend=tensorrt compare_fold=1 2>&1 \
      | tee -a "$O/final-fold-engines.log" | tail -4
  fi
else
  bash docs/device-runs/issue21-trt-real.sh --gpu-only
  bash docs/device-runs/evaluate-run.sh
  python3 docs/device-runs/issue20-hostile.py 2>&1 | tee "$O/issue20-hostile.log"
  python3 docs/device-runs/issue27_opencv_quiet.py 2>&1 | tee "$O/issue27-opencv.log"
fi
