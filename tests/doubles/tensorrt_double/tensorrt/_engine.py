"""TEST DOUBLE: runtime, engine, execution context and engine inspector (not TensorRT).
Execution runs ONNX Runtime on the CPU and moves data through pycuda.driver. Every I/O tensor
needs an address: a missing one fails execute_async_v3, a null binding fails execute_async_v2."""
import json

import numpy as np

import tensorrt as trt
from tensorrt._base import Pybind, call_log, check_buffer, check_type


class Runtime(Pybind):
    def __init__(self, logger):
        self._logger = check_type(logger, trt.ILogger, "logger")

    def deserialize_cuda_engine(self, serialized_engine):
        data = check_buffer(serialized_engine, "serialized_engine")
        if not data.startswith(trt.MAGIC):
            call_log(self._logger, trt.Logger.Severity.ERROR,
                     "1: [stdArchiveReader.cpp] Serialization assertion "
                     "magicTagRead == kMAGIC_TAG failed. Magic tag does not match")
            return None
        head, onnx_bytes = data[len(trt.MAGIC):].split(b"\n", 1)
        header = json.loads(head.decode())
        if header["version"] != trt.__version__:
            call_log(self._logger, trt.Logger.Severity.ERROR,
                     "The engine plan file is not compatible with this "
                     "version of TensorRT, expecting library version %s got %s" % (
                         trt.__version__, header["version"]))
            return None
        return ICudaEngine(header, onnx_bytes, data)


class ICudaEngine(Pybind):
    def __init__(self, header, onnx_bytes, plan):
        self._header, self._onnx, self._plan = header, onnx_bytes, plan
        self._io = [(n, i, tuple(s), trt.DataType[d]) for n, i, s, d in header["io"]]

    def _find(self, name):
        check_type(name, str, "name")
        found = [t for t in self._io if t[0] == name]
        return found[0] if found else None

    # bindings API (8.0-8.6)
    num_bindings = property(lambda self: len(self._io))

    def get_binding_name(self, index):
        return self._io[check_type(index, int, "index")][0]

    def binding_is_input(self, index):
        return self._io[check_type(index, int, "index")][1]

    def get_binding_shape(self, index):
        return self._io[check_type(index, int, "index")][2]

    def get_binding_dtype(self, index):
        return self._io[check_type(index, int, "index")][3]

    def get_binding_index(self, name):
        return [t[0] for t in self._io].index(name) if self._find(name) else -1

    # tensor API (8.5+)
    num_io_tensors = property(lambda self: len(self._io))

    def get_tensor_name(self, index):
        return self._io[check_type(index, int, "index")][0]

    def get_tensor_mode(self, name):
        t = self._find(name)
        return (trt.TensorIOMode.NONE if t is None else trt.TensorIOMode.INPUT if t[1]
                else trt.TensorIOMode.OUTPUT)

    def get_tensor_shape(self, name):
        return self._find(name)[2]

    def get_tensor_dtype(self, name):
        return self._find(name)[3]

    def create_execution_context(self):
        return IExecutionContext(self)

    def create_engine_inspector(self):
        return EngineInspector(self)

    def serialize(self):
        return self._plan

    max_batch_size = property(lambda self: 1)
    has_implicit_batch_dimension = property(lambda self: False)
    num_layers = property(lambda self: len(self._header["layers"]))
    profiling_verbosity = property(lambda self: getattr(trt.ProfilingVerbosity,
                                                        self._header["verbosity"]))


class EngineInspector(Pybind):
    def __init__(self, engine):
        self._engine, self._context = engine, None

    execution_context = property(lambda self: self._context,
                                 lambda self, c: setattr(self, "_context",
                                                         check_type(c, IExecutionContext,
                                                                    "execution_context")))

    def get_layer_information(self, layer, format):
        return json.dumps(self._engine._header["layers"][check_type(layer, int, "layer")])

    def get_engine_information(self, format):
        check_type(format, trt.LayerInformationFormat, "format")
        layers = self._engine._header["layers"]
        if format == trt.LayerInformationFormat.ONELINE:
            return "\n".join(l["Name"] if isinstance(l, dict) else l for l in layers)
        return json.dumps({"Layers": layers, "Bindings": [t[0] for t in self._engine._io]})


class IExecutionContext(Pybind):
    def __init__(self, engine):
        import onnxruntime as ort
        self._engine, self._addresses = engine, {}
        self._session = ort.InferenceSession(engine._onnx, providers=["CPUExecutionProvider"])

    def _run(self, ptrs):
        import pycuda.driver as drv
        drv.Context.synchronize()  # the double runs on the host: wait for work queued before it
        feeds = {}
        for name, is_input, shape, dtype in self._engine._io:
            if is_input:
                feeds[name] = np.empty(shape, _np(dtype))
                drv.memcpy_dtoh(feeds[name], ptrs[name])
        outputs = self._session.run(None, feeds)
        for (name, _, _, dtype), value in zip([t for t in self._engine._io if not t[1]], outputs):
            drv.memcpy_htod(ptrs[name], np.ascontiguousarray(value, _np(dtype)))
        return True

    def _missing(self, ptrs):
        return [t[0] for t in self._engine._io if not ptrs.get(t[0])]

    def set_tensor_address(self, name, memory):
        check_type(name, str, "name")
        self._addresses[name] = check_type(memory, int, "memory")
        return True

    def get_tensor_address(self, name):
        return self._addresses.get(check_type(name, str, "name"), 0)

    def set_input_shape(self, name, shape):
        return True

    def set_binding_shape(self, binding, shape):
        return True

    def get_tensor_shape(self, name):
        return self._engine.get_tensor_shape(name)

    def get_binding_shape(self, binding):
        return self._engine.get_binding_shape(binding)

    def execute_async_v3(self, stream_handle):
        check_type(stream_handle, int, "stream_handle")
        missing = self._missing(self._addresses)
        if missing:
            self._engine_log("IExecutionContext::enqueueV3: Error Code 3: API Usage Error (Address "
                             "is not set for tensor %s. Call setTensorAddress before "
                             "enqueue/execute.)" % missing[0])
            return False
        return self._run(self._addresses)

    def _bindings(self, bindings):
        check_type(bindings, list, "bindings")
        for b in bindings:
            check_type(b, int, "bindings[i]")
        ptrs = dict((t[0], b) for t, b in zip(self._engine._io, bindings))
        missing = self._missing(ptrs)
        if missing:
            self._engine_log("Parameter check failed: null binding for tensor %s (double)"
                             % missing[0])
            return False
        return self._run(ptrs)

    def execute_async_v2(self, bindings, stream_handle):
        check_type(stream_handle, int, "stream_handle")
        return self._bindings(bindings)

    def execute_async(self, batch_size, bindings, stream_handle):
        check_type(stream_handle, int, "stream_handle")
        return self._bindings(bindings)

    def execute_v2(self, bindings):
        return self._bindings(bindings)

    def _engine_log(self, message):
        print("[TRT double] %s" % message)


def _np(dtype):
    return {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32,
            "INT64": np.int64}[dtype.name]
