"""The backend interfaces. Backend: `infer` checks the input, each backend implements
`infer_impl` (host tensor in, host logits out). DeviceBufferBackend: a backend that keeps its
input and output in GPU memory, so the GPU pipeline's kernels write and read them in place."""
import numpy as np

from runtime.errors import EngineError


class Backend(object):
    """A model that maps a 1x3xHxW float tensor to 1xCxhxw logits. `name` and `needs_engine`
    are declared where the backend is registered (runtime.backends.register)."""
    name = "base"
    needs_engine = False
    precision = "fp32"  # the limits verify applies (verify.fp32 / verify.fp16)

    def __init__(self, meta, source):
        self.meta, self.source = meta, source
        self.input_shape = tuple(meta["input"]["shape"])
        self.output_shape = tuple(meta["output"]["shape"])

    def infer(self, tensor):
        """Host tensor -> host logits (float32), after checking shape and dtype."""
        tensor = np.asarray(tensor)
        if tensor.shape != self.input_shape:
            raise EngineError("The %s backend takes a %s tensor, not %s: pre-process with the "
                              "model's sidecar settings." % (
                                  self.name, "x".join(map(str, self.input_shape)),
                                  "x".join(map(str, tensor.shape))))
        if not np.issubdtype(tensor.dtype, np.floating):
            raise EngineError("The %s backend takes a float tensor, not %s." % (
                self.name, tensor.dtype))
        logits = self.infer_impl(np.ascontiguousarray(tensor, np.float32))
        return np.asarray(logits, np.float32).reshape(self.output_shape)

    def infer_impl(self, tensor):
        raise NotImplementedError

    def describe(self):
        return {"backend": self.name, "model": self.source, "precision": self.precision}

    def close(self):
        pass


class DeviceBufferBackend(Backend):
    """A backend whose input and output live in GPU memory. The GPU pipeline
    (runtime.gpu_pipeline) pre-processes straight into `input`, calls `execute_async(stream)`,
    and post-processes straight from `output`: no tensor or logits cross the bus. A subclass
    sets, in its __init__:
      input, output:  device pointers (int() gives the address) of the sidecar's shapes;
      input_dtype, output_dtype:  their numpy dtypes (float32 or float16);
      stream:  the CUDA stream `infer` uses when none is given.
    Its `infer_impl` still serves host tensors (verify's layer b, the CPU pre/post path)."""
    input = output = stream = None
    input_dtype = output_dtype = np.dtype(np.float32)

    def execute_async(self, stream=None):
        """Enqueue one inference from `input` to `output` on `stream` (default: self.stream)."""
        raise NotImplementedError
