"""The runtime's public API: Segmenter(model folder or .onnx).segment(image_bgr) ->
SegmentationResult, and overlay(image, mask, alpha). Pre/post-processing runs on the GPU kernels
when they are compiled for this GPU (pre_post="gpu"/"auto"), else on the CPU reference ops."""
import os
import time

import numpy as np

from runtime import palette as pal
from runtime import reference
from runtime.backends.base import DeviceBufferBackend
from runtime.errors import EngineError


class SegmentationResult(object):
    def __init__(self, mask, timings, logits=None, overlay=None):
        self.mask, self.timings, self.logits, self.overlay = mask, timings, logits, overlay


def overlay(image_bgr, mask, alpha, labels, palette):
    """Colourized mask blended over the image, with a legend of the classes present."""
    return pal.draw_legend(reference.blend(image_bgr, mask, pal.bgr_table(palette), alpha), mask,
                           labels, palette)


def backend_for_path(model, backend="auto"):
    """A backend for an engine folder (artifacts/engine/<slug>) or a model.onnx file."""
    from runtime.backends import open_backend
    from runtime.engine_folder import EngineFolder
    if model.endswith(".onnx"):
        return open_backend(backend, None, model)
    if not os.path.isdir(model):
        raise EngineError("%s is neither an engine folder nor an .onnx file: pass "
                          "artifacts/engine/<device> or artifacts/onnx/model.onnx." % model)
    return open_backend(backend, EngineFolder(model), None)


class Segmenter(object):
    """image (BGR uint8) -> tensor -> logits -> mask, with per-stage timings in milliseconds."""

    def __init__(self, backend, kernels=None, keep_logits=False):
        self.backend, self.meta, self.keep_logits = backend, backend.meta, keep_logits
        _, _, self.in_h, self.in_w = self.meta["input"]["shape"]
        self.labels, self.palette = self.meta["labels"], self.meta["palette"]
        self.gpu, self.on_device = None, isinstance(backend, DeviceBufferBackend)
        if kernels is not None:
            from runtime.gpu_pipeline import GpuPipeline
            b = backend
            # a host backend: the pipeline keeps its own float32 buffers and stream
            self.gpu = (GpuPipeline(kernels, self.meta, stream=b.stream, input_ptr=b.input,
                                    output_ptr=b.output, input_dtype=b.input_dtype,
                                    output_dtype=b.output_dtype) if self.on_device
                        else GpuPipeline(kernels, self.meta))

    @classmethod
    def from_path(cls, model, backend="auto", kernels_dir=None, keep_logits=False):
        """A segmenter for an engine folder or an .onnx file; GPU pre/post when kernels_dir holds
        cubins compiled for this GPU (doit runtime_check writes them to artifacts/kernels/sm_XX)."""
        kernels = None
        if kernels_dir:
            from runtime.cuda_ops import Kernels
            kernels = Kernels(kernels_dir)
        return cls(backend_for_path(model, backend), kernels, keep_logits)

    def overlay(self, image_bgr, mask, alpha=0.5):
        """The mask in this model's palette blended over the image, with a legend."""
        return overlay(image_bgr, mask, alpha, self.labels, self.palette)

    @property
    def pre_post(self):
        return "gpu" if self.gpu else "cpu"

    def preprocess(self, image_bgr):
        """The tensor this runtime feeds the model (for verify's layer a)."""
        if self.gpu:
            self.gpu.upload(image_bgr)
            self.gpu.preprocess()
            return self.gpu.download_input().astype(np.float32)
        pre = self.meta["preprocess"]
        return reference.preprocess(image_bgr, self.in_h, self.in_w, pre["mean"], pre["std"],
                                    pre["scale"], pre["pass_order"])

    def segment(self, image_bgr, overlay_alpha=None):
        """Mask (HxW uint8 at the original size), timings, optional logits and overlay."""
        if self.gpu:
            return self._segment_gpu(image_bgr, overlay_alpha)
        t = [time.perf_counter()]
        tensor = self.preprocess(image_bgr)
        t.append(time.perf_counter())
        logits = self.backend.infer(tensor)
        t.append(time.perf_counter())
        mask = reference.upsample_argmax(logits, image_bgr.shape[0], image_bgr.shape[1])
        t.append(time.perf_counter())
        ms = [1000.0 * (b - a) for a, b in zip(t, t[1:])]
        result = SegmentationResult(mask,
                                    {"preprocess": ms[0], "infer": ms[1], "postprocess": ms[2]},
                                    logits if self.keep_logits else None)
        if overlay_alpha is not None:
            result.overlay = overlay(image_bgr, mask, overlay_alpha, self.labels, self.palette)
        return result

    def _segment_gpu(self, image_bgr, overlay_alpha):
        gpu, b = self.gpu, self.backend
        gpu.upload(image_bgr)
        gpu.preprocess()
        host_ms = 0.0
        if self.on_device:
            b.execute_async(gpu.stream)
        else:
            t0 = time.perf_counter()
            gpu.upload_logits(b.infer(gpu.download_input()))
            host_ms = 1000.0 * (time.perf_counter() - t0)
        gpu.postprocess()
        mask = gpu.download_mask()
        timings = gpu.timings()
        if not self.on_device:
            timings["infer"] = host_ms
        result = SegmentationResult(mask, timings)
        if self.keep_logits:
            result.logits = self._download_logits()
        if overlay_alpha is not None:
            result.overlay = pal.draw_legend(gpu.overlay(overlay_alpha), mask, self.labels,
                                             self.palette)
        return result

    def _download_logits(self):
        out = np.empty(self.meta["output"]["shape"], self.gpu.output_dtype)
        self.gpu.drv.memcpy_dtoh(out, self.gpu.output)
        return out.astype(np.float32)
