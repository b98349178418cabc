#!/usr/bin/env bash
# The device-tool run behind docs/device-runs/final-*.log: the whole chain, every GPU test, doctor,
# and bench through the TensorRT test double, on the GPU test machine (NVIDIA H100, CUDA 13,
# transformers/torch/onnx/onnxruntime preinstalled there; pycuda, doit, onnxsim and
# onnxconverter-common from .devwheels). No TensorRT there: "tensorrt" below is the double
# (tests/doubles/tensorrt_double, ONNX Runtime on the CPU inside), not TensorRT.
set -o pipefail
O=${OUT:-/tmp/out}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devwheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv | tee $O/final-chain.log
python3 -m doit 2>&1 | tee -a $O/final-chain.log                       # checkout golden onnx precision verify
python3 -m doit runtime_check 2>&1 | tee -a $O/final-chain.log         # kernels for sm_90, one inference
python3 -m doit doctor 2>&1 | tee $O/final-doctor.log
[ -n "$SKIP_TESTS" ] || { python3 -m pytest -q -m gpu tests/ -p no:cacheprovider > $O/final-gpu-tests.log 2>&1; tail -5 $O/final-gpu-tests.log; }
export PYTHONPATH=$PWD/tests/doubles/tensorrt_double:$PYTHONPATH TRT_DOUBLE_API=10
{ python3 -m doit build_engine && python3 -m doit verify backend=tensorrt && python3 -m doit bench n=50 cpu=0; } 2>&1 | tee $O/final-bench-trt-double.log
cp artifacts/bench/*.json $O/final-bench-trt-double.json
