"""What this machine is: the device fingerprint (GPU, compute capability, CUDA, TensorRT,
L4T), its slug, and the settings that decide whether device-side tasks rerun. Light to
import; TensorRT and pycuda are imported only when a fingerprint is asked for."""
import os
import re

from stages.errors import DeviceError

_CACHE = {}


def probe_gpu():
    """GPU 0 as a dict, or None where pycuda or a CUDA device is absent."""
    try:
        import pycuda.driver as cuda
        cuda.init()
        if cuda.Device.count() < 1:
            return None
        dev = cuda.Device(0)
        cc = dev.compute_capability()
        return {"name": dev.name(), "compute_capability": "%d.%d" % cc,
                "cuda": ".".join(str(v) for v in cuda.get_version()[:2]),
                "driver": cuda.get_driver_version(), "memory_mb": dev.total_memory() // (1 << 20)}
    except Exception:  # ImportError, or pycuda's driver errors when there is no GPU or driver
        return None


def probe_tensorrt():
    try:
        import tensorrt
        return tensorrt.__version__
    except Exception:
        return None


def l4t_release(path="/etc/nv_tegra_release"):
    """'32.7.1' from '# R32 (release), REVISION: 7.1, ...', or None off Jetson."""
    try:
        with open(path) as f:
            m = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", f.read())
        return "%s.%s" % m.groups() if m else None
    except (IOError, OSError):
        return None


def fingerprint():
    """The device identity an engine is tied to (cached for the process)."""
    if "fp" not in _CACHE:
        gpu = probe_gpu()
        _CACHE["fp"] = {"gpu": gpu["name"] if gpu else None,
                        "compute_capability": gpu["compute_capability"] if gpu else None,
                        "cuda": gpu["cuda"] if gpu else None, "tensorrt": probe_tensorrt(),
                        "l4t": l4t_release(), "memory_mb": gpu["memory_mb"] if gpu else None}
    return _CACHE["fp"]


def slug(fp):
    """A folder name for the fingerprint, e.g. nvidia-tegra-x1_sm53_cuda10.2_trt8.2.1.8_l4t32.7.1."""
    parts = [re.sub(r"[^a-z0-9]+", "-", (fp["gpu"] or "nogpu").lower()).strip("-"),
             "sm" + (fp["compute_capability"] or "0").replace(".", ""),
             "cuda" + (fp["cuda"] or "none"), "trt" + (fp["tensorrt"] or "none")]
    if fp.get("l4t"):
        parts.append("l4t" + fp["l4t"])
    return "_".join(parts)


def identity(fp):
    """The fields that make an engine incompatible when they change."""
    return dict((k, fp[k]) for k in ("gpu", "compute_capability", "cuda", "tensorrt", "l4t"))


def engine_dir(layout):
    return layout.engine_dir(slug(fingerprint()))


def built_engine(layout):
    """Path of this device's engine if it has been built, else None."""
    path = os.path.join(engine_dir(layout), "model.engine")
    return path if fingerprint()["tensorrt"] and os.path.isfile(path) else None


def _engine_sha(layout):
    from stages.files import sha256_file
    path = built_engine(layout)
    return sha256_file(path) if path else None


def engine_settings(engine_cfg, layout):
    return {"engine": engine_cfg, "device": identity(fingerprint())}


def engine_present(layout):
    """A doit uptodate callable: False when this device's engine file is missing."""
    return lambda task, values: built_engine(layout) is not None


def check_settings(layout, cfg):
    return {"device": identity(fingerprint()), "engine_sha256": _engine_sha(layout)}


def verify_settings(cfg, layout, backend):
    engine = _engine_sha(layout) if backend in ("auto", "tensorrt") and probe_tensorrt() else None
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
