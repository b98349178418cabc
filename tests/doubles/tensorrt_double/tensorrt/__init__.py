"""TEST DOUBLE of the `tensorrt` Python API (not TensorRT). See tests/doubles/README.md.

Generation chosen by TRT_DOUBLE_API ("8.2" or "10"). Backed by onnx + ONNX Runtime."""
import enum
import json
import os

import numpy as np

__double__ = True
API = os.environ.get("TRT_DOUBLE_API", "8.2")
GEN10 = API.startswith("10")
__version__ = "10.3.0.26" if GEN10 else "8.2.1.8"
MAGIC = b"TRTDOUBLE1\n"


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3


float32, float16, int32 = DataType.FLOAT, DataType.HALF, DataType.INT32


def nptype(dt):
    return {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32}[dt]


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger(object):
    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = list(_Severity)

    def __init__(self, *args):
        pass

    def log(self, severity, msg):
        pass


class Logger(ILogger):
    def __init__(self, min_severity=_Severity.WARNING):
        ILogger.__init__(self)
        self.min_severity = min_severity

    def log(self, severity, msg):
        if severity <= self.min_severity:
            print("[TRT double] %s" % msg)


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    OBEY_PRECISION_CONSTRAINTS = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class TensorIOMode(enum.Enum):
    NONE, INPUT, OUTPUT = 0, 1, 2


class LayerType(enum.Enum):
    CONVOLUTION, MATRIX_MULTIPLY, ELEMENTWISE, REDUCE, UNARY, SOFTMAX, SHUFFLE, RESIZE, OTHER = range(9)


_LAYER_TYPES = {"Conv": LayerType.CONVOLUTION, "MatMul": LayerType.MATRIX_MULTIPLY, "Gemm": LayerType.MATRIX_MULTIPLY,
                "Add": LayerType.ELEMENTWISE, "Sub": LayerType.ELEMENTWISE, "Mul": LayerType.ELEMENTWISE,
                "Div": LayerType.ELEMENTWISE, "Pow": LayerType.ELEMENTWISE, "ReduceMean": LayerType.REDUCE,
                "Sqrt": LayerType.UNARY, "Erf": LayerType.UNARY, "Softmax": LayerType.SOFTMAX,
                "Reshape": LayerType.SHUFFLE, "Transpose": LayerType.SHUFFLE, "Resize": LayerType.RESIZE}

from tensorrt._network import Builder, OnnxParser, INetworkDefinition  # noqa: E402,F401
from tensorrt._engine import Runtime, ICudaEngine  # noqa: E402,F401

if GEN10:
    class IProgressMonitor(object):
        def __init__(self):
            pass
