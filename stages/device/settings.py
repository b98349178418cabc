"""The device side of the layout: this device's engine folder, the settings that decide whether
device-side tasks rerun, and the refusals on machines that lack TensorRT or CUDA. The fingerprint
itself lives in runtime/device.py and the engine folder's files in runtime/engine_folder.py."""
from runtime import backends
from runtime.device import fingerprint, identity, slug
from runtime.engine_folder import EngineFolder
from stages.common.errors import DeviceError


def engine_folder(layout):
    """This device's EngineFolder (whether or not it has been built)."""
    return EngineFolder(layout.engine_dir(slug(fingerprint())))


def built_engine(layout):
    """This device's EngineFolder when its engine is built (and TensorRT is here), else None."""
    folder = engine_folder(layout)
    return folder if fingerprint()["tensorrt"] and folder.exists() else None


def _engine_sha(layout):
    """The engine's sha256 as recorded in its sidecar (both are written by one build), so a
    no-op doit does not hash the engine file."""
    folder = built_engine(layout)
    if folder is None:
        return None
    return folder.recorded_sha256() or "unreadable sidecar"


def engine_settings(engine_cfg, layout):
    return {"engine": engine_cfg, "device": identity(fingerprint())}


def engine_present(layout):
    """A doit uptodate check: False when this device's engine file is missing."""
    from stages.common.uptodate import Check
    return Check(lambda: "this device's engine is not built yet (%s)" % engine_folder(layout).path,
                 lambda: built_engine(layout) is not None)


def check_settings(layout, cfg):
    return {"device": identity(fingerprint()), "engine_sha256": _engine_sha(layout)}


def verify_settings(cfg, layout, backend):
    engine = _engine_sha(layout) if backends.may_use_engine(backend) else None
    from stages.device.limits import in_effect  # issue 23: explicit keys, precision.json
    return {"backend": backend, "verify": cfg["verify"], "engine_sha256": engine,
            "limits": in_effect(cfg, layout, engine)}


def refuse(message):
    raise DeviceError(message)


def refuse_engine():
    raise DeviceError("TensorRT engines are built on the target device, and this machine has no "
                      "TensorRT or no CUDA GPU (pycuda): copy the bundle there (doit bundle) and "
                      "run `doit build_engine` on the device.")


def refuse_cuda(task):
    raise DeviceError("'doit %s' needs a CUDA GPU with pycuda, and this machine has none: run it "
                      "on the device (pip install -r requirements-device.txt there)." % task)
