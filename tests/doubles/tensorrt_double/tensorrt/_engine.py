"""TEST DOUBLE: runtime, engine and execution context of the `tensorrt` API (not TensorRT).
Execution runs ONNX Runtime on the CPU and moves data through pycuda.driver."""
import json

import numpy as np

import tensorrt as trt


class Runtime(object):
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data):
        data = bytes(data)
        if not data.startswith(trt.MAGIC):
            self.logger.log(trt.ILogger.ERROR, "1: [stdArchiveReader.cpp] Serialization assertion magicTagRead == "
                            "kMAGIC_TAG failed. Magic tag does not match")
            return None
        head, onnx_bytes = data[len(trt.MAGIC):].split(b"\n", 1)
        header = json.loads(head.decode())
        if header["version"] != trt.__version__:
            self.logger.log(trt.ILogger.ERROR, "The engine plan file is not compatible with this version of "
                            "TensorRT, expecting library version %s got %s" % (trt.__version__, header["version"]))
            return None
        return ICudaEngine(header, onnx_bytes)


class ICudaEngine(object):
    def __init__(self, header, onnx_bytes):
        self.header, self.onnx_bytes = header, onnx_bytes
        self.io = [(n, True, tuple(s)) for n, s in header["inputs"]] + [(n, False, tuple(s)) for n, s in header["outputs"]]

    def create_execution_context(self):
        return IExecutionContext(self)

    if trt.GEN10:
        @property
        def num_io_tensors(self):
            return len(self.io)

        def get_tensor_name(self, i):
            return self.io[i][0]

        def _find(self, name):
            return [t for t in self.io if t[0] == name][0]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if self._find(name)[1] else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return self._find(name)[2]

        def get_tensor_dtype(self, name):
            return trt.float32
    else:
        @property
        def num_bindings(self):
            return len(self.io)

        def get_binding_name(self, i):
            return self.io[i][0]

        def binding_is_input(self, i):
            return self.io[i][1]

        def get_binding_shape(self, i):
            return self.io[i][2]

        def get_binding_dtype(self, i):
            return trt.float32


class IExecutionContext(object):
    def __init__(self, engine):
        import onnxruntime as ort
        self.engine, self.addresses = engine, {}
        self.session = ort.InferenceSession(engine.onnx_bytes, providers=["CPUExecutionProvider"])

    def _run(self, ptrs):
        import pycuda.driver as drv
        drv.Context.synchronize()  # the double runs on the host: wait for work queued before it
        feeds = {}
        for name, is_input, shape in self.engine.io:
            if is_input:
                feeds[name] = np.empty(shape, np.float32)
                drv.memcpy_dtoh(feeds[name], ptrs[name])
        outputs = self.session.run(None, feeds)
        for (name, is_input, shape), value in zip([t for t in self.engine.io if not t[1]], outputs):
            drv.memcpy_htod(ptrs[name], np.ascontiguousarray(value, np.float32))
        return True

    if trt.GEN10:
        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            return self._run(self.addresses)
    else:
        def execute_async_v2(self, bindings, stream_handle):
            return self._run(dict((t[0], b) for t, b in zip(self.engine.io, bindings)))
