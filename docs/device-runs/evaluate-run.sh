#!/usr/bin/env bash
# doit evaluate on the GPU test machine (issue 24), for the lead's batched device run. Same setup as
# final-run.sh: transformers/torch/onnx/onnxruntime preinstalled there; pycuda, doit, onnxsim and
# onnxconverter-common from .devwheels (carry it). No TensorRT there: the "engine" variant below
# runs through the TensorRT test double (ONNX Runtime inside), so what this checks on the GPU is
# evaluate's device path with the real CUDA pre/post kernels (runtime_check compiles them), not
# TensorRT's accuracy. On a Jetson: `doit build_engine && doit evaluate` after unpacking the bundle.
set -o pipefail
O=${OUT:-/tmp/out}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devwheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv | tee $O/evaluate-run.log
python3 -m doit evaluate 2>&1 | tee -a $O/evaluate-run.log               # host: reference, fp32, fp16 preview
python3 -m doit runtime_check 2>&1 | tail -3 | tee -a $O/evaluate-run.log  # CUDA kernels for this GPU
export PYTHONPATH=$PWD/tests/doubles/tensorrt_double:$PYTHONPATH TRT_DOUBLE_API=10
{ python3 -m doit build_engine && python3 -m doit evaluate; } 2>&1 | tee -a $O/evaluate-run.log
cp artifacts/evaluate/report.json $O/evaluate-report.json
grep -q "engine .*pre/post on the GPU" $O/evaluate-run.log && echo "engine variant ran with GPU pre/post" | tee -a $O/evaluate-run.log
