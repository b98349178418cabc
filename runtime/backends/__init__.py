"""The backends as a registry, and the one place that chooses between them: `open_backend`.
verify, infer, bench and runtime_check all come through here (via stages.device.select), and so
does Segmenter.from_path. The registry holds names and where each class lives, nothing heavier:
the schema reads its names without importing TensorRT, pycuda, ONNX Runtime or numpy."""
import importlib
import os
from collections import OrderedDict
from importlib.util import find_spec

from runtime import files, sidecar
from runtime.errors import ArtifactError, ConfigError, EngineError

AUTO = "auto"
_ENTRIES = OrderedDict()  # name -> Entry, in the order `auto` prefers them


class Entry(object):
    """A backend as the registry declares it. where: "module:Class" (a runtime.backends.base
    Backend, imported when the backend opens); needs_engine: it runs this device's built engine
    (an EngineFolder) rather than model.onnx; requires: the module `auto` needs importable to
    pick it (None: `auto` may always pick it)."""

    def __init__(self, name, where, needs_engine=False, requires=None):
        self.name, self.where = name, where
        self.needs_engine, self.requires = needs_engine, requires

    def runs_here(self, engine_folder):
        """Whether `auto` may pick this backend on this machine."""
        if self.needs_engine and (engine_folder is None or not engine_folder.exists()):
            return False
        return self.requires is None or find_spec(self.requires) is not None

    def load(self):
        """The backend class, declared with this entry's name and needs_engine."""
        module, _, attr = self.where.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        cls.name, cls.needs_engine = self.name, self.needs_engine
        return cls


def register(name, where, needs_engine=False, requires=None):
    """Add a backend: backend=<name> is then accepted everywhere (schema, verify, infer, bench)."""
    _ENTRIES[name] = Entry(name, where, needs_engine, requires)
    return _ENTRIES[name]


def unregister(name):
    _ENTRIES.pop(name, None)


register("tensorrt", "runtime.backends.tensorrt_backend:TensorRTBackend", needs_engine=True,
         requires="tensorrt")
register("onnxruntime", "runtime.backends.onnxruntime_backend:OnnxRuntimeBackend")


def names():
    """What backend= takes: auto, then every registered backend."""
    return (AUTO,) + tuple(_ENTRIES)


def entry(name):
    """The registry's Entry for a backend name (not auto)."""
    check_name(name)
    return _ENTRIES[name]


def may_use_engine(name):
    """Whether backend=<name> may run this device's engine (so a rebuilt engine reruns it)."""
    return name == AUTO or entry(name).needs_engine


def check_name(backend, where="backend="):
    """One sentence for a name that is not a backend (e.g. backend=trt)."""
    if backend not in names():
        raise ConfigError("%s%s is not a backend: use one of %s." % (
            where, backend, ", ".join(names())))
    return backend


def choose(backend, engine_folder):
    """The backend `auto` means here: the first registered one that runs here (TensorRT when
    this device's engine is built and TensorRT imports, else ONNX Runtime). An explicit name is
    returned as it is."""
    check_name(backend)
    if backend != AUTO:
        return backend
    return next(e.name for e in _ENTRIES.values() if e.runs_here(engine_folder))


def open_backend(backend="auto", engine_folder=None, onnx_path=None, current_device=None):
    """A ready backend. engine_folder: an EngineFolder (or None); onnx_path: model.onnx with its
    model.json beside it (or None). Every artifact is hash-checked against its sidecar first."""
    chosen = entry(choose(backend, engine_folder))
    if chosen.needs_engine:
        if engine_folder is None or not engine_folder.exists():
            raise EngineError("No TensorRT engine for this device in %s: build it here with "
                              "`doit build_engine`." % (
                                  engine_folder.path if engine_folder else "the project"))
        if current_device is None:
            from runtime.device import identity
            current_device = identity()
        return chosen.load()(engine_folder, current_device)
    if not onnx_path or not os.path.isfile(onnx_path):
        raise EngineError("%s is missing: run `doit onnx` on the host, or copy the bundle." % (
            onnx_path or "model.onnx"))
    return chosen.load()(onnx_path, checked_onnx_sidecar(onnx_path))


def checked_onnx_sidecar(onnx_path):
    """The sidecar beside model.onnx, after checking that the file is the one it describes."""
    folder = os.path.dirname(onnx_path) or "."
    meta = sidecar.load(folder)
    if files.sha256_file(onnx_path) != meta["onnx_sha256"]:
        raise ArtifactError("%s does not match the onnx_sha256 in %s (damaged, or from another "
                            "run): rerun `doit onnx` on the host, or copy both from one bundle." % (
                                onnx_path, os.path.join(folder, sidecar.SIDECAR)))
    return meta
