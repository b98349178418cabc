"""CUDA pre/post-processing through pycuda: load the precompiled cubins (no nvcc needed at
inference), launch each op on a stream with errors checked, and keep per-frame-size buffers
(pinned host + device) across frames. Memory traffic per frame: one host-to-device copy of
the raw image and one device-to-host copy of the mask (plus the overlay when asked)."""
import os

import numpy as np

from runtime.errors import DeviceError
from runtime.reference import horizontal_first, resample_coeffs, source_coords

KERNEL_FILES = ("preprocess", "postprocess", "overlay")
BLOCK = (32, 8, 1)


_DRIVER = []


def driver():
    """pycuda.driver with the primary context made current (resolved once), or DeviceError."""
    if _DRIVER:
        return _DRIVER[0]
    try:
        import pycuda.driver as drv
        try:
            import pycuda.autoprimaryctx  # noqa: F401  (pycuda >= 2021.1: shares the primary context)
        except ImportError:
            import pycuda.autoinit  # noqa: F401
        _DRIVER.append(drv)
        return drv
    except Exception as e:
        raise DeviceError("CUDA is not usable here (%s): install pycuda and run on a machine with an "
                          "NVIDIA GPU." % str(e).splitlines()[0][:120])


def arch():
    """This GPU's architecture name, e.g. sm_53 on the Jetson Nano."""
    drv = driver()
    return "sm_%d%d" % drv.Context.get_device().compute_capability()


def launch(fn, width, height, args, stream):
    """Launch a 2-D kernel over width x height on `stream`; errors become DeviceError."""
    drv = driver()
    grid = ((width + BLOCK[0] - 1) // BLOCK[0], (height + BLOCK[1] - 1) // BLOCK[1], 1)
    try:
        fn(*args, block=BLOCK, grid=grid, stream=stream)
    except drv.Error as e:
        raise DeviceError("CUDA kernel %s failed to launch (%s): rebuild the kernels with doit runtime_check." % (
            getattr(fn, "name", "?"), e))


class Kernels(object):
    """The three ops' functions, loaded from artifacts/kernels/<arch>/<op>.cubin."""

    def __init__(self, cubin_dir):
        drv = driver()
        self.folder, self.modules = cubin_dir, {}
        for name in KERNEL_FILES:
            path = os.path.join(cubin_dir, name + ".cubin")
            if not os.path.isfile(path):
                raise DeviceError("The CUDA kernel %s is not compiled for this GPU: run `doit runtime_check` "
                                  "once on this device." % path)
            try:
                self.modules[name] = drv.module_from_file(path)
            except drv.Error as e:
                raise DeviceError("%s cannot be loaded on this GPU (%s): delete it and run `doit runtime_check`." % (
                    path, e))
        get = lambda mod, fn: self.modules[mod].get_function(fn)  # noqa: E731
        self.resample_u8 = get("preprocess", "resample_u8")
        self.normalize = {np.dtype(np.float32): get("preprocess", "resample_normalize_f32"),
                          np.dtype(np.float16): get("preprocess", "resample_normalize_f16")}
        per_dtype = lambda fn: dict((np.dtype(t), get("postprocess", fn + s))  # noqa: E731
                                    for t, s in ((np.float32, "_f32"), (np.float16, "_f16")))
        self.upsample_argmax = per_dtype("upsample_argmax")  # every class at every pixel
        self.cell_labels = per_dtype("cell_labels")  # the early-out: per-cell class or 255
        self.upsample_argmax_early = per_dtype("upsample_argmax_early")  # per pixel
        self.upsample_argmax_cells = per_dtype("upsample_argmax_cells")  # one block per cell
        self.blend = get("overlay", "blend_overlay")


def launch_blocks(fn, grid, threads, args, stream):
    """Launch `fn` on a grid of (x, y) blocks of `threads` threads; errors become DeviceError."""
    drv = driver()
    try:
        fn(*args, block=(int(threads), 1, 1), grid=(int(grid[0]), int(grid[1]), 1), stream=stream)
    except drv.Error as e:
        raise DeviceError("CUDA kernel %s failed to launch (%s): rebuild the kernels with doit runtime_check." % (
            getattr(fn, "name", "?"), e))


def cell_spans(in_size, out_size):
    """Per texel index: (first output index, count) of the output pixels whose first source
    texel it is, from the kernels' own float32 source-index arithmetic (reference.source_coords)."""
    first = source_coords(in_size, out_size)[0]
    count = np.bincount(first, minlength=in_size)
    return np.ascontiguousarray(np.stack([np.cumsum(count) - count, count], axis=1), np.int32)


def identity_coeffs(size):
    bounds = np.stack([np.arange(size, dtype=np.int32), np.ones(size, np.int32)], axis=1)
    return bounds, np.full((size, 1), 1 << 22, np.int32)


class Frame(object):
    """Buffers for one frame size, reused until the size changes."""

    def __init__(self, drv, h, w, in_h, in_w, pass_order):
        self.h, self.w = h, w
        self.host_image = drv.pagelocked_empty((h, w, 3), np.uint8)
        self.image = drv.mem_alloc(h * w * 3)
        self.host_mask = drv.pagelocked_empty((h, w), np.uint8)
        self.mask = drv.mem_alloc(h * w)
        self.overlay, self.host_overlay = None, None
        self.h_first = horizontal_first(h, w, in_h, in_w, pass_order)
        mid_h, mid_w = (h, in_w) if self.h_first else (in_h, w)
        self.mid_shape = (mid_h, mid_w)
        self.mid = drv.mem_alloc(mid_h * mid_w * 3)
        self.coeffs = {}
        for axis, n_in, n_out in (("h", w, in_w), ("v", h, in_h)):
            bounds, weights = resample_coeffs(n_in, n_out) if n_in != n_out else identity_coeffs(n_in)
            self.coeffs[axis] = (drv.to_device(np.ascontiguousarray(bounds)),
                                 drv.to_device(np.ascontiguousarray(weights)), np.int32(weights.shape[1]))
