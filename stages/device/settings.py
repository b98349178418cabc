"""The device side of the layout: this device's engine folder, the settings that decide whether
device-side tasks rerun, and the refusals on machines that lack TensorRT or CUDA. The fingerprint
itself lives in runtime/device.py. Light to import."""
import os

import json

from runtime.device import fingerprint, identity, slug
from stages.common.errors import DeviceError


def engine_dir(layout):
    return layout.engine_dir(slug(fingerprint()))


def built_engine(layout):
    """Path of this device's engine if it has been built, else None."""
    path = os.path.join(engine_dir(layout), "model.engine")
    return path if fingerprint()["tensorrt"] and os.path.isfile(path) else None


def _engine_sha(layout):
    """The engine's sha256 as recorded in its sidecar (both are written by one build), so a
    no-op doit does not hash the engine file."""
    path = built_engine(layout)
    if not path:
        return None
    try:
        with open(os.path.join(os.path.dirname(path), "model.json")) as f:
            return json.load(f)["engine"]["sha256"]
    except (IOError, OSError, ValueError, KeyError):
        return "unreadable sidecar"


def engine_settings(engine_cfg, layout):
    return {"engine": engine_cfg, "device": identity(fingerprint())}


def engine_present(layout):
    """A doit uptodate callable: False when this device's engine file is missing."""
    return lambda task, values: built_engine(layout) is not None


def check_settings(layout, cfg):
    return {"device": identity(fingerprint()), "engine_sha256": _engine_sha(layout)}


def verify_settings(cfg, layout, backend):
    engine = _engine_sha(layout) if backend in ("auto", "tensorrt") else None
    return {"backend": backend, "verify": cfg["verify"], "engine_sha256": engine}


def refuse(message):
    raise DeviceError(message)


def refuse_engine():
    raise DeviceError("TensorRT engines are built on the target device, and this machine has no TensorRT "
                      "or no CUDA GPU (pycuda): copy the bundle there (doit bundle) and run `doit build_engine` "
                      "on the device.")


def refuse_cuda(task):
    raise DeviceError("'doit %s' needs a CUDA GPU with pycuda, and this machine has none: run it on the "
                      "device (pip install -r requirements-device.txt there)." % task)
