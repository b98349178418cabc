"""TensorRT backend: the engine plus its sidecar, pycuda device buffers and a stream.

Uses the tensor API (num_io_tensors, set_tensor_address, execute_async_v3) where the engine has
it (TensorRT >= 8.5.1, the only API in 10.x and 11.x) and the bindings API (get_binding_*,
execute_async_v2) on 8.0-8.4, chosen by feature detection. Tensor types go through
runtime/trt_types.py, not trt.nptype (which raises on 8.0-8.5.2 with numpy 1.24-1.26). The
engine's I/O must be exactly the sidecar's input and output, and both get an address. In this
project's CI it runs only against the TensorRT test double (tests/doubles), never real TensorRT."""
import numpy as np

from runtime.backends.base import Backend, DeviceBufferBackend
from runtime.errors import DeviceError, EngineError
from runtime.trt_types import to_numpy


def import_tensorrt():
    try:
        import tensorrt as trt
        return trt
    except ImportError:
        raise DeviceError("TensorRT's Python bindings are not importable here: on a Jetson they "
                          "come with JetPack (python3-libnvinfer); elsewhere pip install tensorrt, "
                          "or use backend=onnxruntime.")


class EngineIO(object):
    """Name, direction, shape and dtype of each engine input/output, across both API generations."""

    def __init__(self, engine, trt):
        self.tensor_api = hasattr(engine, "num_io_tensors")
        self.tensors = []
        if self.tensor_api:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                self.tensors.append((name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                                     tuple(engine.get_tensor_shape(name)),
                                     to_numpy(engine.get_tensor_dtype(name))))
        else:
            for i in range(engine.num_bindings):
                self.tensors.append((engine.get_binding_name(i), engine.binding_is_input(i),
                                     tuple(engine.get_binding_shape(i)),
                                     to_numpy(engine.get_binding_dtype(i))))

    def check_matches(self, meta, path):
        """The engine's I/O must be the sidecar's one input and one output, nothing more."""
        want = sorted([(meta["input"]["name"], True), (meta["output"]["name"], False)])
        have = sorted((t[0], t[1]) for t in self.tensors)
        if have != want:
            raise EngineError("%s has the inputs/outputs %s but its sidecar names %s: rebuild the "
                              "engine with doit build_engine from this model.onnx." % (
                                  path, ", ".join(t[0] for t in self.tensors),
                                  ", ".join(w[0] for w in want)))

    def find(self, name, is_input, path):
        for t in self.tensors:
            if t[0] == name and t[1] == is_input:
                return t
        raise EngineError("%s has no %s named %r (it has %s): rebuild the engine with doit "
                          "build_engine." % (
            path, "input" if is_input else "output", name, ", ".join(t[0] for t in self.tensors)))


class TensorRTBackend(DeviceBufferBackend):
    def __init__(self, folder, current_device):
        """folder: an EngineFolder; current_device: runtime.device.identity() of this machine."""
        meta = folder.read()
        path = folder.engine
        Backend.__init__(self, meta, path)
        self.precision = folder.precision(meta)
        trt = self.trt = import_tensorrt()
        folder.check_compatible(current_device, meta)
        plan = folder.read_plan(meta)
        from runtime.cuda_ops import driver
        drv = self.drv = driver()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineError("%s could not be deserialized (corrupt, or from another TensorRT): "
                              "rebuild it with `doit build_engine`." % path)
        self.io = EngineIO(self.engine, trt)
        self.io.check_matches(meta, path)
        _, _, ishape, self.input_dtype = self.io.find(meta["input"]["name"], True, path)
        _, _, oshape, self.output_dtype = self.io.find(meta["output"]["name"], False, path)
        if ishape != self.input_shape or oshape != self.output_shape:
            raise EngineError("%s has shapes %s -> %s but its sidecar says %s -> %s: rebuild it "
                              "with doit build_engine." % (
                                  path, ishape, oshape, self.input_shape, self.output_shape))
        self.context = self.engine.create_execution_context()
        self.stream = drv.Stream()
        self.input = drv.mem_alloc(int(np.prod(ishape)) * self.input_dtype.itemsize)
        self.output = drv.mem_alloc(int(np.prod(oshape)) * self.output_dtype.itemsize)
        self.host_input = drv.pagelocked_empty(ishape, self.input_dtype)
        self.host_output = drv.pagelocked_empty(oshape, self.output_dtype)
        self._bind()

    def _bind(self):
        ptrs = {self.meta["input"]["name"]: int(self.input),
                self.meta["output"]["name"]: int(self.output)}
        if self.io.tensor_api:
            for name, ptr in ptrs.items():
                self.context.set_tensor_address(name, ptr)
        else:
            # check_matches: every tensor has one
            self.bindings = [ptrs[t[0]] for t in self.io.tensors]

    def execute_async(self, stream=None):
        """Run the engine on the device buffers (enqueued on `stream`)."""
        stream = stream or self.stream
        if self.io.tensor_api:
            ok = self.context.execute_async_v3(stream.handle)
        else:
            ok = self.context.execute_async_v2(self.bindings, stream.handle)
        if not ok:
            raise EngineError("TensorRT failed to execute %s: see the messages above; rebuild the "
                              "engine if it persists." % self.source)

    def infer_impl(self, tensor):
        np.copyto(self.host_input, tensor.astype(self.input_dtype))
        self.drv.memcpy_htod_async(self.input, self.host_input, self.stream)
        self.execute_async()
        self.drv.memcpy_dtoh_async(self.host_output, self.output, self.stream)
        self.stream.synchronize()
        return self.host_output.astype(np.float32)

    def describe(self):
        d = Backend.describe(self)
        d.update({"api": "tensor (execute_async_v3)" if self.io.tensor_api
                  else "bindings (execute_async_v2)",
                  "tensorrt": getattr(self.trt, "__version__", None)})
        return d
