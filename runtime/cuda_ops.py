"""CUDA pre/post-processing through pycuda: load the precompiled cubins (no nvcc needed at
inference), launch each op on a stream with errors checked, and keep per-frame-size buffers
(pinned host + device) across frames. Memory traffic per frame: one host-to-device copy of
the raw image and one device-to-host copy of the mask (plus the overlay when asked)."""
import os

import numpy as np

from runtime.errors import DeviceError
from runtime.kernels import KERNELS, cubin, tile_shared_regions
from runtime.reference import horizontal_first, resample_coeffs, source_coords

BLOCK = (32, 8, 1)


_DRIVER = []


def driver():
    """pycuda.driver with the primary context made current (resolved once), or DeviceError."""
    if _DRIVER:
        return _DRIVER[0]
    try:
        import pycuda.driver as drv
        try:
            # pycuda >= 2021.1: shares the primary context
            import pycuda.autoprimaryctx  # noqa: F401
        except ImportError:
            import pycuda.autoinit  # noqa: F401
        _DRIVER.append(drv)
        return drv
    except Exception as e:
        raise DeviceError("CUDA is not usable here (%s): install pycuda and run on a machine with "
                          "an NVIDIA GPU." % str(e).splitlines()[0][:120])


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
        raise DeviceError("CUDA kernel %s failed to launch (%s): rebuild the kernels with doit "
                          "runtime_check." % (getattr(fn, "name", "?"), e))


class Kernels(object):
    """The three ops' functions, loaded from artifacts/kernels/<arch>/<op>.cubin."""

    def __init__(self, cubin_dir):
        drv = driver()
        self.folder, self.modules = cubin_dir, {}
        for name in KERNELS:
            path = cubin(cubin_dir, name)
            if not os.path.isfile(path):
                raise DeviceError("The CUDA kernel %s is not compiled for this GPU: run `doit "
                                  "runtime_check` once on this device." % path)
            try:
                self.modules[name] = drv.module_from_file(path)
            except drv.Error as e:
                raise DeviceError("%s cannot be loaded on this GPU (%s): delete it and run `doit "
                                  "runtime_check`." % (path, e))
        get = lambda mod, fn: self.modules[mod].get_function(fn)  # noqa: E731
        self.resample_u8 = get("preprocess", "resample_u8")
        self.normalize = {np.dtype(np.float32): get("preprocess", "resample_normalize_f32"),
                          np.dtype(np.float16): get("preprocess", "resample_normalize_f16")}
        per_dtype = lambda fn: dict((np.dtype(t), get("postprocess", fn + s))  # noqa: E731
                                    for t, s in ((np.float32, "_f32"), (np.float16, "_f16")))
        self.upsample_argmax = per_dtype("upsample_argmax")  # every class at every pixel
        self.upsample_argmax_tiles = per_dtype("upsample_argmax_tiles")  # the early-out, one launch
        self.cell_labels = per_dtype("cell_labels")  # the early-out for windows too large for the
        self.upsample_argmax_early = per_dtype("upsample_argmax_early")  # tiles: per pixel
        self.blend = get("overlay", "blend_overlay")


def launch_blocks(fn, grid, block, args, stream, shared=0):
    """Launch `fn` on a grid of (x, y) blocks of (x, y) threads with `shared` bytes of dynamic
    shared memory; errors become DeviceError."""
    drv = driver()
    try:
        fn(*args, block=(int(block[0]), int(block[1]), 1), grid=(int(grid[0]), int(grid[1]), 1),
           shared=int(shared), stream=stream)
    except drv.Error as e:
        raise DeviceError("CUDA kernel %s failed to launch (%s): rebuild the kernels with doit "
                          "runtime_check." % (getattr(fn, "name", "?"), e))


# The tiled early-out (upsample_argmax_tiles): each block writes a tile of w x h mask pixels with
# warps of 32 threads, from the texel window of its tile in shared memory. The first tile shape
# whose largest window fits SHARED_MAX is used; none fits only for strong downscales.
TILES = ((256, 16), (128, 16), (128, 8), (64, 8), (32, 8), (32, 4), (32, 2), (32, 1))
SHARED_MAX = 48 * 1024  # every CUDA GPU gives a block this much without opting in


def tile_window(in_size, out_size, tile):
    """The largest number of texels along one axis that a tile of `tile` output pixels reads
    (the kernels' float32 source-index arithmetic: reference.source_coords)."""
    i0, i1 = source_coords(in_size, out_size)[:2]
    first = np.arange(0, out_size, tile)
    last = np.minimum(first + tile, out_size) - 1
    return int((i1[last] - i0[first]).max()) + 1


def tile_shared_bytes(classes, rows, cols, tile_w):
    """Dynamic shared memory of one block for a window of rows x cols texels, as the kernel
    lays it out (postprocess.cu's TILE_SHARED table: a candidate set, every class's value,
    margin, largest |logit|, winner and cell label per texel; source texels and weights per
    column of the tile)."""
    sizes = {"texels": rows * cols, "classes": classes, "tile_w": tile_w}
    return sum(size * int(np.prod([sizes[n] for n in count]))
               for _, size, count in tile_shared_regions())


def choose_tile(classes, h, w, out_h, out_w, tiles=TILES):
    """((tile_w, tile_h), block, grid, shared bytes) of the tiled early-out for this frame, or
    None where no tile shape's window fits in shared memory."""
    for tw, th in tiles:
        rows, cols = tile_window(h, out_h, th), tile_window(w, out_w, tw)
        shared = tile_shared_bytes(classes, rows, cols, tw)
        if shared <= SHARED_MAX:
            warps = max(1, min(8, tw * th // 512))
            return (tw, th), (32, warps), (-(-out_w // tw), -(-out_h // th)), shared
    return None


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
            bounds, weights = (resample_coeffs(n_in, n_out) if n_in != n_out
                               else identity_coeffs(n_in))
            self.coeffs[axis] = (drv.to_device(np.ascontiguousarray(bounds)),
                                 drv.to_device(np.ascontiguousarray(weights)),
                                 np.int32(weights.shape[1]))
