"""ONNX Runtime backend: the CPU, or the CUDA provider where onnxruntime-gpu is installed."""
from runtime.backends.base import Backend
from runtime.errors import DeviceError, EngineError


class OnnxRuntimeBackend(Backend):
    def __init__(self, onnx_path, meta, providers=None):
        Backend.__init__(self, meta, onnx_path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise DeviceError("onnxruntime is not installed: pip install onnxruntime (or choose "
                              "backend=tensorrt).")
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available]
        try:
            self.session = ort.InferenceSession(onnx_path, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise EngineError("ONNX Runtime cannot load %s (%s): rebuild it with doit onnx." % (
                onnx_path, str(e).splitlines()[0][:160]))
        names = ([i.name for i in self.session.get_inputs()],
                 [o.name for o in self.session.get_outputs()])
        if names != ([meta["input"]["name"]], [meta["output"]["name"]]):
            raise EngineError("%s has inputs/outputs %s, but its sidecar says %s/%s: rebuild both "
                              "with doit onnx." % (
                                  onnx_path, names, meta["input"]["name"], meta["output"]["name"]))
        self.providers = self.session.get_providers()

    def infer_impl(self, tensor):
        return self.session.run([self.meta["output"]["name"]],
                                {self.meta["input"]["name"]: tensor})[0]

    def describe(self):
        d = Backend.describe(self)
        d["providers"] = self.providers
        return d
