"""Inference backends behind one small interface (runtime.backends.base.Backend), and the one
place that chooses between them: `open_backend`. verify, infer, bench and runtime_check all come
through here (via stages.device.select), and so does Segmenter.from_path."""
import os
from importlib.util import find_spec

from runtime import files, sidecar
from runtime.errors import ArtifactError, ConfigError, EngineError

BACKENDS = ("auto", "tensorrt", "onnxruntime")


def check_name(backend, where="backend="):
    """One sentence for a name that is not a backend (e.g. backend=trt)."""
    if backend not in BACKENDS:
        raise ConfigError("%s%s is not a backend: use one of %s." % (
            where, backend, ", ".join(BACKENDS)))
    return backend


def choose(backend, engine_folder):
    """The backend `auto` means here: TensorRT when this device's engine is built and TensorRT
    imports, else ONNX Runtime. An explicit name is returned as it is."""
    check_name(backend)
    if backend != "auto":
        return backend
    has_engine = engine_folder is not None and engine_folder.exists()
    return "tensorrt" if has_engine and find_spec("tensorrt") is not None else "onnxruntime"


def open_backend(backend="auto", engine_folder=None, onnx_path=None, current_device=None):
    """A ready backend. engine_folder: an EngineFolder (or None); onnx_path: model.onnx with its
    model.json beside it (or None). Every artifact is hash-checked against its sidecar first."""
    chosen = choose(backend, engine_folder)
    if chosen == "tensorrt":
        if engine_folder is None or not engine_folder.exists():
            raise EngineError("No TensorRT engine for this device in %s: build it here with "
                              "`doit build_engine`." % (
                                  engine_folder.path if engine_folder else "the project"))
        from runtime.backends.tensorrt_backend import TensorRTBackend
        if current_device is None:
            from runtime.device import identity
            current_device = identity()
        return TensorRTBackend(engine_folder, current_device)
    if not onnx_path or not os.path.isfile(onnx_path):
        raise EngineError("%s is missing: run `doit onnx` on the host, or copy the bundle." % (
            onnx_path or "model.onnx"))
    meta = checked_onnx_sidecar(onnx_path)
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(onnx_path, meta)


def checked_onnx_sidecar(onnx_path):
    """The sidecar beside model.onnx, after checking that the file is the one it describes."""
    folder = os.path.dirname(onnx_path) or "."
    meta = sidecar.load(folder)
    if files.sha256_file(onnx_path) != meta["onnx_sha256"]:
        raise ArtifactError("%s does not match the onnx_sha256 in %s (damaged, or from another "
                            "run): rerun `doit onnx` on the host, or copy both from one bundle." % (
                                onnx_path, os.path.join(folder, sidecar.SIDECAR)))
    return meta
