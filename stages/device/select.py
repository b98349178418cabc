"""Pick the best runtime on this machine: this device's engine when it is built (else ONNX
Runtime), and the GPU pre/post kernels when they are compiled for this GPU (else the CPU ops)."""
import os

from stages.device import settings as device
from stages.common.errors import DeviceError, EngineError


def kernels_for_this_gpu(layout, required):
    """Loaded cubins for this GPU, or None (CPU ops) when they are absent and not required."""
    if device.fingerprint()["gpu"] is None:
        if required:
            raise DeviceError("The GPU kernels need a CUDA GPU with pycuda, and this machine has none: "
                              "run on the device, or use the CPU path.")
        return None
    from runtime.cuda_ops import Kernels, arch
    folder = layout.kernels_dir(arch())
    if not os.path.isdir(folder) and not required:
        print("note: CUDA kernels are not compiled for this GPU yet (doit runtime_check); using the CPU ops.")
        return None
    return Kernels(folder)


def open_runtime(layout, backend="auto", keep_logits=False, pre_post="auto"):
    from runtime.segmenter import Segmenter, make_backend
    engine = device.built_engine(layout) if backend in ("auto", "tensorrt") else None
    if backend == "tensorrt" and engine is None:
        raise EngineError("No TensorRT engine for this device (%s) under %s: build it here with `doit build_engine`." % (
            device.slug(device.fingerprint()), layout.engine_root))
    model = os.path.dirname(engine) if engine else layout.onnx_model
    if not engine and not os.path.isfile(layout.onnx_model):
        raise EngineError("%s is missing: run `doit onnx` on the host, or copy the bundle." % layout.onnx_model)
    b = make_backend(model, backend, device.identity(device.fingerprint()), onnx_fallback=layout.onnx_model)
    kernels = None if pre_post == "cpu" else kernels_for_this_gpu(layout, pre_post == "gpu")
    return Segmenter(b, kernels, keep_logits)


def describe(seg):
    d = seg.backend.describe()
    d["pre_post"] = seg.pre_post
    return d
