"""One small backend interface: `infer` checks the input, each backend implements `infer_impl`."""
import numpy as np

from runtime.errors import EngineError


class Backend(object):
    """A model that maps a 1x3xHxW float tensor to 1xCxhxw logits."""
    name = "base"
    precision = "fp32"  # the limits verify applies (verify.fp32 / verify.fp16)
    device_buffers = False  # True where the backend exposes GPU input/output buffers

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
