"""What this machine is: the device fingerprint an engine is tied to (GPU, compute capability,
CUDA, TensorRT, L4T) and its folder slug. TensorRT and pycuda are imported only when asked."""
import re

# The fields of the fingerprint an engine is tied to, and their names in messages
IDENTITY_KEYS = ("gpu", "compute_capability", "cuda", "tensorrt", "l4t")
IDENTITY_LABELS = {"gpu": "GPU", "compute_capability": "compute capability", "cuda": "CUDA",
                   "tensorrt": "TensorRT", "l4t": "L4T"}
_CACHE = {}


def probe_gpu():
    """GPU 0 as a dict, or None where pycuda or a CUDA device is absent."""
    try:
        import pycuda.driver as cuda
        cuda.init()
        if cuda.Device.count() < 1:
            return None
        dev = cuda.Device(0)
        return {"name": dev.name(), "compute_capability": "%d.%d" % dev.compute_capability(),
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
        gpu = probe_gpu() or {}
        _CACHE["fp"] = {"gpu": gpu.get("name"), "compute_capability": gpu.get("compute_capability"),
                        "cuda": gpu.get("cuda"), "tensorrt": probe_tensorrt(), "l4t": l4t_release(),
                        "memory_mb": gpu.get("memory_mb")}
    return _CACHE["fp"]


def identity(fp=None):
    """The fields that make an engine incompatible when they change."""
    fp = fp or fingerprint()
    return dict((k, fp[k]) for k in IDENTITY_KEYS)


def slug(fp=None):
    """A folder name for the fingerprint, e.g.
    nvidia-tegra-x1_sm53_cuda10.2_trt8.2.1.8_l4t32.7.1."""
    fp = fp or fingerprint()
    parts = [re.sub(r"[^a-z0-9]+", "-", (fp["gpu"] or "nogpu").lower()).strip("-"),
             "sm" + (fp["compute_capability"] or "0").replace(".", ""),
             "cuda" + (fp["cuda"] or "none"), "trt" + (fp["tensorrt"] or "none")]
    if fp.get("l4t"):
        parts.append("l4t" + fp["l4t"])
    return "_".join(parts)
