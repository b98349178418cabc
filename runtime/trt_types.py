"""TensorRT DataType -> numpy dtype, done here rather than through trt.nptype.

trt.nptype builds its table with `np.bool` in TensorRT 8.0.1 to 8.5.2
(python/packaging/tensorrt/__init__.py, e.g. line 165 at tag 8.2.1, line 166 at 8.5.1), so on
numpy 1.24-1.26 (which removed np.bool; numpy 2 brought it back) every nptype call raises
AttributeError, even for float32. 8.5.3 changed it to np.bool_. JetPack 5.1.x ships 8.5.2.
This table goes by the enum member's name, which every TensorRT generation binds."""
import numpy as np

from runtime.errors import EngineError

_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
          "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}


def member_name(dtype):
    """'HALF' for trt.DataType.HALF (pybind11 enums print as 'DataType.HALF')."""
    name = getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype).split(".")[-1]


def to_numpy(dtype, where="the engine"):
    """np.dtype for a TensorRT DataType; one sentence for types numpy cannot hold (FP8, BF16,
    INT4...)."""
    name = member_name(dtype)
    if name not in _NUMPY:
        raise EngineError("%s has a tensor of TensorRT type %s, which has no numpy equivalent: "
                          "rebuild the engine with fp32 inputs and outputs (doit build_engine)." % (
                              where, name))
    return np.dtype(_NUMPY[name])


def short_name(dtype):
    """'fp32', 'fp16', 'int32'... for reports (the inspector summary, build.log)."""
    name = member_name(dtype)
    return {"FLOAT": "fp32", "HALF": "fp16", "BF16": "bf16"}.get(name, name.lower())
