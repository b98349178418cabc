"""Pick the best runtime on this machine: this device's engine when it is built (else ONNX
Runtime), and the GPU pre/post kernels when they are compiled for this GPU (else the CPU ops)."""
import os

from stages.device import settings as device
from stages.common.errors import DeviceError


def kernels_for_this_gpu(layout, required):
    """Loaded cubins for this GPU, or None (CPU ops) when they are absent and not required."""
    if device.fingerprint()["gpu"] is None:
        if required:
            raise DeviceError("The GPU kernels need a CUDA GPU with pycuda, and this machine has "
                              "none: run on the device, or use the CPU path.")
        return None
    from runtime.cuda_ops import Kernels, arch
    folder = layout.kernels_dir(arch())
    if not os.path.isdir(folder) and not required:
        print("note: CUDA kernels are not compiled for this GPU yet (doit runtime_check); using "
              "the CPU ops.")
        return None
    return Kernels(folder)


def open_runtime(layout, backend="auto", keep_logits=False, pre_post="auto"):
    """The runtime verify, infer, bench and runtime_check use: the backend chosen once, by
    runtime.backends.open_backend, from this device's engine folder and model.onnx."""
    from runtime.backends import AUTO, entry, open_backend
    from runtime.segmenter import Segmenter
    if backend != AUTO and entry(backend).needs_engine and not device.fingerprint()["tensorrt"]:
        raise DeviceError("backend=%s: this machine cannot run TensorRT (no TensorRT Python "
                          "module here; engines run on the device they were built on): use "
                          "backend=onnxruntime or auto here, or run this on the device." % backend)
    b = open_backend(backend, device.engine_folder(layout), layout.onnx_model,
                     device.identity(device.fingerprint()))
    kernels = None if pre_post == "cpu" else kernels_for_this_gpu(layout, pre_post == "gpu")
    return Segmenter(b, kernels, keep_logits)


def describe(seg):
    d = seg.backend.describe()
    d["pre_post"] = seg.pre_post
    return d
