#!/usr/bin/env bash
# Issue 22, item 4 on a device with real TensorRT (a Jetson Nano, or any machine whose python3
# imports `tensorrt` and pycuda): the folded and the unfolded engines timed side by side by
# `doit bench compare_fold=1`. Not run yet: the project's GPU test machine has TensorRT-RTX only,
# and the TensorRT test double is not TensorRT (set DOUBLE=1 to rehearse this script with it).
#
# Before, on the host:  doit bundle compare_fold=1   (ships artifacts/bench/fold/model.unfolded.*)
# then copy and unpack the bundle on the device, and from its segformer-trt/ folder:
#     bash docs/device-runs/issue22-fold-engines.sh
# (the bundle carries no docs/: copy this script beside it). Writes $OUT/issue22-fold-engines.log
# and $OUT/issue22-fold-engines.json (the bench JSON; its "fold_engines" holds both engines' p50s,
# the MACs, the ratio and the device). The second engine's build takes minutes on a Nano.
set -o pipefail
O=${OUT:-/tmp/out}
mkdir -p "$O"
if [ -n "$DOUBLE" ]; then
  export PYTHONPATH=$PWD/tests/doubles/tensorrt_double:$PWD/tests/doubles/pycuda_double:$PYTHONPATH
  export TRT_DOUBLE_API=${TRT_DOUBLE_API:-10}
fi
python3 -c "import tensorrt as t; print('TensorRT', t.__version__)" 2>&1 | tee "$O/issue22-fold-engines.log"
{ python3 -m doit build_engine && python3 -m doit bench n=20 cpu=0 backend=tensorrt compare_fold=1; } \
  2>&1 | tee -a "$O/issue22-fold-engines.log"
cp artifacts/bench/*.json "$O/issue22-fold-engines.json"
