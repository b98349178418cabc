#!/usr/bin/env bash
# Issue 23 on the GPU test machine: the tiled kernel now carves its shared memory from the
# TILE_SHARED table in runtime/kernels/postprocess.cu (which cuda_ops.tile_shared_bytes reads), and
# the Segmenter finds GPU buffers through DeviceBufferBackend instead of getattr. (The kernel's PTX
# was compared on the host with nvcc 13: byte-identical to the one before, for sm_75, sm_87, sm_90.)
# Checks: every GPU test (the tiled early-out against the CPU oracle, the TensorRT double's device
# buffers), then the chain through the double (the DeviceBufferBackend path). Needs .devwheels and
# artifacts/ carried, as final-run.sh. "tensorrt" is the TensorRT test double, not TensorRT.
set -o pipefail
O=${OUT:-/tmp/out}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devwheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
python3 -m pytest -q -m gpu tests/ -p no:cacheprovider > $O/issue23-gpu-tests.log 2>&1
tail -5 $O/issue23-gpu-tests.log
export PYTHONPATH=$PWD/tests/doubles/tensorrt_double:$PYTHONPATH TRT_DOUBLE_API=10
{ python3 -m doit runtime_check && python3 -m doit build_engine && python3 -m doit verify backend=tensorrt \
  && python3 -m doit bench n=20 cpu=0; } 2>&1 | tee $O/issue23-chain.log
