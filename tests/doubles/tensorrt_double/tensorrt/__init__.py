"""TEST DOUBLE of the `tensorrt` Python API (not TensorRT). See tests/doubles/README.md.

The release it emulates comes from TRT_DOUBLE_API (see RELEASES). Its attribute surface is the
one extracted from NVIDIA's bindings source at that tag (tests/doubles/tensorrt_double/
surface.json, each fact with its tag and path:line): every class, member and enum value the table
marks absent is removed after the classes are defined, so the double exposes exactly that surface.
Objects behave like pybind11's: setting an unknown attribute raises AttributeError, wrong argument
types raise TypeError, an ILogger/IProgressMonitor subclass that skips the base __init__ raises.
Backed by onnx + ONNX Runtime."""
import json
import os

import numpy as np

from tensorrt._base import PyEnum, Pybind, Trampoline, check_type

__double__ = True
# TRT_DOUBLE_API -> (surface generation, other tag whose diff applies, __version__,
#                    nptype uses np.bool)
RELEASES = {
    "8.0": ("8.0", None, "8.0.1.6", True),          # JetPack 4.6 (L4T 32.6.1)
    "8.2": ("8.2", None, "8.2.1.8", True),          # JetPack 4.6.1-4.6.6 (L4T 32.7.x): the Nano
    "8.4": ("8.4-8.6", "8.4.3", "8.4.3.1", True),
    # JetPack 5.1.x; 8.5.2's bindings = 8.5.1's surface
    "8.5": ("8.4-8.6", "8.5.1", "8.5.2.2", True),
    "8.5.3": ("8.4-8.6", "8.5.3", "8.5.3.1", False),
    "8.6": ("8.4-8.6", None, "8.6.1.6", False),
    "10": ("10", None, "10.0.0.6", False),
    "11": ("11", None, "11.1.0", False),
}
API = os.environ.get("TRT_DOUBLE_API", "8.2")
if API not in RELEASES:
    raise ImportError("TRT_DOUBLE_API=%s is not one of %s" % (API, ", ".join(sorted(RELEASES))))
GENERATION, OTHER_TAG, __version__, NPTYPE_NP_BOOL = RELEASES[API]
SURFACE_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "surface.json")
MAGIC = b"TRTDOUBLE2\n"


def surface():
    """{fact: present} for this release: the generation's table plus the other tag's diff."""
    with open(SURFACE_FILE) as f:
        gen = json.load(f)["generations"][GENERATION]
    facts = dict((k, v["present"]) for k, v in gen["facts"].items())
    if OTHER_TAG:
        for k in gen["other_tags"][OTHER_TAG].get("missing_in_" + OTHER_TAG, []):
            facts[k] = False
        for k in gen["other_tags"][OTHER_TAG].get("only_in_" + OTHER_TAG, []):
            facts[k] = True
    return facts


SURFACE = surface()


def _enum(name, members, extra=()):
    present = [m for m in members if SURFACE.get("%s.%s" % (name, m), True)] + list(extra)
    return PyEnum(name, [(m, i) for i, m in enumerate(present)])


DataType = _enum("DataType",
                 ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64",
                  "INT4", "FP4", "E8M0"])
_ALIASES = {"float32": "FLOAT", "float16": "HALF", "int8": "INT8", "int32": "INT32", "bool": "BOOL",
            "uint8": "UINT8", "fp8": "FP8", "bfloat16": "BF16", "int64": "INT64", "int4": "INT4",
            "fp4": "FP4", "e8m0": "E8M0"}
for _alias, _member in _ALIASES.items():
    if SURFACE["trt." + _alias]:
        globals()[_alias] = DataType[_member]


def _np_bool():
    """np.bool as numpy has it: removed in 1.24-1.26 (back in 2.0). TRT_DOUBLE_NUMPY=1.24 makes
    the double see such a numpy even where a newer one is installed."""
    version = os.environ.get("TRT_DOUBLE_NUMPY", np.__version__)
    if (1, 24) <= tuple(int(v) for v in version.split(".")[:2]) < (2, 0):
        raise AttributeError("module 'numpy' has no attribute 'bool'.\n`np.bool` was a deprecated "
                             "alias for the builtin `bool`. (numpy %s)" % version)
    return getattr(np, "bool")


def nptype(trt_type):
    """As the release's tensorrt/__init__.py: the table is built on every call, with np.bool up to
    8.5.2 (AttributeError on numpy 1.24-1.26), np.bool_ from 8.5.3."""
    mapping = {float32: np.float32, float16: np.float16, int8: np.int8, int32: np.int32,
               bool: _np_bool() if NPTYPE_NP_BOOL else np.bool_}
    if "uint8" in globals():
        mapping[globals()["uint8"]] = np.uint8
    if "int64" in globals():
        mapping[globals()["int64"]] = np.int64
    if trt_type in mapping:
        return mapping[trt_type]
    raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


def volume(shape):
    return int(np.prod(shape))


def get_plugin_registry():
    return None


def init_libnvinfer_plugins(logger, namespace):
    return True


Severity = PyEnum("Severity", [("INTERNAL_ERROR", 0), ("ERROR", 1), ("WARNING", 2), ("INFO", 3),
                               ("VERBOSE", 4)])


class ILogger(Pybind, metaclass=Trampoline):
    Severity = Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = list(Severity)

    def __init__(self):
        self._base_init = True

    def log(self, severity, msg):
        raise RuntimeError("Tried to call pure virtual function \"ILogger::log\"")


class Logger(ILogger):
    Severity = Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = list(Severity)

    def __init__(self, min_severity=Severity.WARNING):
        ILogger.__init__(self)
        self._min = check_type(min_severity, Severity, "min_severity")

    @property
    def min_severity(self):
        return self._min

    @min_severity.setter
    def min_severity(self, value):
        self._min = check_type(value, Severity, "min_severity")

    def log(self, severity, msg):
        if int(severity) <= int(self._min):
            print("[TRT double] %s" % msg)


NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag",
                                      ["EXPLICIT_BATCH", "EXPLICIT_PRECISION", "STRONGLY_TYPED"])
BuilderFlag = _enum("BuilderFlag",
                    ["FP16", "BF16", "INT8", "TF32", "STRICT_TYPES", "OBEY_PRECISION_CONSTRAINTS",
                     "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS",
                     "DISABLE_TIMING_CACHE", "ERROR_ON_TIMING_CACHE_MISS",
                     "EDITABLE_TIMING_CACHE", "VERSION_COMPATIBLE"], ["GPU_FALLBACK", "REFIT"])
MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE"], ["DLA_MANAGED_SRAM"])
TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
LayerType = _enum("LayerType",
                  ["CONVOLUTION", "MATRIX_MULTIPLY", "ELEMENTWISE", "REDUCE", "UNARY", "SOFTMAX",
                   "SHUFFLE", "RESIZE", "NORMALIZATION", "CAST", "CONSTANT"],
                  ["ACTIVATION", "CONCATENATION", "GATHER", "IDENTITY", "POOLING", "SHAPE",
                   "SLICE"])
LayerInformationFormat = _enum("LayerInformationFormat", ["ONELINE", "JSON"])
ProfilingVerbosity = _enum("ProfilingVerbosity",
                           ["NONE", "LAYER_NAMES_ONLY", "DETAILED", "DEFAULT", "VERBOSE"])

from tensorrt._network import (  # noqa: E402,F401
    Builder, IBuilderConfig, INetworkDefinition, ITimingCache)
from tensorrt._network import ILayer, ITensor  # noqa: E402,F401
from tensorrt._parser import OnnxParser, ParserError  # noqa: E402,F401
from tensorrt._engine import (  # noqa: E402,F401
    EngineInspector, ICudaEngine, IExecutionContext, Runtime)


class IProgressMonitor(Pybind, metaclass=Trampoline):
    def __init__(self):
        self._base_init = True

    def phase_start(self, phase_name, parent_phase, num_steps):
        raise RuntimeError("Tried to call pure virtual function \"IProgressMonitor::phase_start\"")

    def step_complete(self, phase_name, step):
        raise RuntimeError("Tried to call pure virtual function "
                           "\"IProgressMonitor::step_complete\"")

    def phase_finish(self, phase_name):
        raise RuntimeError("Tried to call pure virtual function \"IProgressMonitor::phase_finish\"")


def _prune():
    """Remove what this release does not bind (facts marked absent in surface.json)."""
    module = globals()
    for fact, present in SURFACE.items():
        if present:
            continue
        owner, _, member = fact.partition(".")
        if owner == "trt":
            module.pop(member, None)
        elif not member:
            module.pop(owner, None)
        elif owner in module and isinstance(module[owner], type) and member in vars(module[owner]):
            delattr(module[owner], member)


_prune()
