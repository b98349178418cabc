"""GPU path of the runtime: image -> (upload) -> preprocess -> [backend] -> postprocess -> mask.

The preprocess kernel writes straight into the backend's input buffer and the postprocess
kernel reads the backend's output buffer (TensorRT). With a host backend (ONNX Runtime) the
pipeline owns both buffers and the tensor/logits cross the bus in between."""
import numpy as np

from runtime.cuda_ops import TILES, Frame, choose_tile, driver, launch, launch_blocks


class GpuPipeline(object):
    def __init__(self, kernels, meta, stream=None, input_ptr=None, input_dtype=np.float32,
                 output_ptr=None, output_dtype=np.float32, tiles=TILES):
        drv = self.drv = driver()
        self.k = kernels
        self.stream = stream or drv.Stream()
        _, _, self.in_h, self.in_w = meta["input"]["shape"]
        _, self.classes, self.out_h, self.out_w = meta["output"]["shape"]
        pre = meta["preprocess"]
        self.pass_order = pre["pass_order"]
        self.norm = [np.float32(pre["scale"])] + [np.float32(v) for v in pre["mean"]] + \
                    [np.float32(v) for v in pre["std"]]
        self.input_dtype, self.output_dtype = np.dtype(input_dtype), np.dtype(output_dtype)
        self.input = input_ptr or drv.mem_alloc(3 * self.in_h * self.in_w
                                                * self.input_dtype.itemsize)
        self.output = output_ptr or drv.mem_alloc(self.classes * self.out_h * self.out_w
                                                  * self.output_dtype.itemsize)
        palette = np.ascontiguousarray(np.asarray(meta["palette"], np.uint8)[:, ::-1])
        self.palette, self.colors = drv.to_device(palette), np.int32(len(palette))
        self.cells = drv.mem_alloc(self.out_h * self.out_w)  # the per-pixel early-out's cell labels
        self.tiles = tiles  # tile shapes the early-out may use (cuda_ops.choose_tile); () for none
        self.frame = None
        self.events = dict((n, drv.Event()) for n in ("start", "upload", "preprocess", "infer",
                                                      "postprocess", "download"))

    def _frame(self, h, w):
        if self.frame is None or (self.frame.h, self.frame.w) != (h, w):
            self.frame = Frame(self.drv, h, w, self.in_h, self.in_w, self.pass_order)
            self.frame.tile = choose_tile(self.classes, self.out_h, self.out_w, h, w, self.tiles)
        return self.frame

    def upload(self, image_bgr):
        """Copy one BGR uint8 frame into pinned memory and on to the GPU (async)."""
        f = self._frame(image_bgr.shape[0], image_bgr.shape[1])
        self.events["start"].record(self.stream)
        np.copyto(f.host_image, image_bgr)
        self.drv.memcpy_htod_async(f.image, f.host_image, self.stream)
        self.events["upload"].record(self.stream)

    def preprocess(self):
        """Two resample passes (Pillow's order), then RGB + normalize into the input buffer."""
        f = self.frame
        first, second = ("h", "v") if f.h_first else ("v", "h")
        mid_h, mid_w = f.mid_shape
        b, wts, k = f.coeffs[first]
        launch(self.k.resample_u8, mid_w, mid_h,
               [f.image, np.int32(f.w), f.mid, np.int32(mid_h), np.int32(mid_w), b, wts, k,
                np.int32(first == "h")], self.stream)
        b, wts, k = f.coeffs[second]
        launch(self.k.normalize[self.input_dtype], self.in_w, self.in_h,
               [f.mid, np.int32(mid_w), self.input, np.int32(self.in_h), np.int32(self.in_w), b,
                wts, k, np.int32(second == "h")] + self.norm, self.stream)
        self.events["preprocess"].record(self.stream)

    def postprocess(self, early=True):
        """Fused bilinear upsample + argmax of the output buffer into the frame's mask. With
        `early` (the default), cells whose four texels agree by a safe margin skip the per-pixel
        work and the others interpolate only the classes that can win there; the mask is
        bit-identical to early=False (every class at every pixel)."""
        f, t = self.frame, self.output_dtype
        self.events["infer"].record(self.stream)
        logits = [self.output, np.int32(self.classes), np.int32(self.out_h), np.int32(self.out_w)]
        if early and f.tile is not None:  # one launch: a block per tile of the mask
            (tw, th), block, grid, shared = f.tile
            launch_blocks(self.k.upsample_argmax_tiles[t], grid, block,
                          logits + [f.mask, np.int32(f.h), np.int32(f.w), np.int32(tw),
                                    np.int32(th)],
                          self.stream, shared)
        elif early:  # texel windows too large for shared memory: per-cell labels, then per pixel
            launch(self.k.cell_labels[t], self.out_w, self.out_h, logits + [self.cells],
                   self.stream)
            launch(self.k.upsample_argmax_early[t], f.w, f.h,
                   logits + [self.cells, f.mask, np.int32(f.h), np.int32(f.w)], self.stream)
        else:
            launch(self.k.upsample_argmax[t], f.w, f.h,
                   logits + [f.mask, np.int32(f.h), np.int32(f.w)], self.stream)
        self.events["postprocess"].record(self.stream)

    def download_mask(self):
        f = self.frame
        self.drv.memcpy_dtoh_async(f.host_mask, f.mask, self.stream)
        self.events["download"].record(self.stream)
        self.stream.synchronize()
        return f.host_mask.copy()

    def timings(self):
        """Milliseconds per stage of the last frame, from CUDA events."""
        e = self.events
        order = ["start", "upload", "preprocess", "infer", "postprocess", "download"]
        return dict((b, e[b].time_since(e[a])) for a, b in zip(order, order[1:]))

    def overlay(self, alpha):
        """Colourize + blend the last mask over the last image on the GPU; returns BGR uint8."""
        f = self.frame
        if f.overlay is None:
            f.overlay = self.drv.mem_alloc(f.h * f.w * 3)
            f.host_overlay = self.drv.pagelocked_empty((f.h, f.w, 3), np.uint8)
        launch(self.k.blend, f.w, f.h,
               [f.image, f.mask, self.palette, self.colors, np.float32(alpha),
                f.overlay, np.int32(f.h), np.int32(f.w)], self.stream)
        self.drv.memcpy_dtoh_async(f.host_overlay, f.overlay, self.stream)
        self.stream.synchronize()
        return f.host_overlay.copy()

    def download_input(self):
        """The preprocessed tensor, for verify's layer (a) and host backends."""
        out = np.empty((1, 3, self.in_h, self.in_w), self.input_dtype)
        self.drv.memcpy_dtoh_async(out, self.input, self.stream)
        self.stream.synchronize()
        return out

    def upload_logits(self, logits):
        """Host logits (from a host backend) into the output buffer."""
        self.host_logits = np.ascontiguousarray(logits, self.output_dtype)
        self.drv.memcpy_htod_async(self.output, self.host_logits, self.stream)
