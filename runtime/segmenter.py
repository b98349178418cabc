"""The runtime's public API: Segmenter(model folder or .onnx).segment(image_bgr) -> SegmentationResult,
and overlay(image, mask, alpha). Pre/post-processing runs on the GPU kernels when they are
compiled for this GPU (pre_post="gpu"/"auto"), else on the CPU reference ops."""
import os
import time

import numpy as np

from runtime import palette as pal
from runtime import reference, sidecar
from runtime.errors import EngineError


class SegmentationResult(object):
    def __init__(self, mask, timings, logits=None, overlay=None):
        self.mask, self.timings, self.logits, self.overlay = mask, timings, logits, overlay


def overlay(image_bgr, mask, alpha, labels, palette):
    """Colourized mask blended over the image, with a legend of the classes present."""
    return pal.draw_legend(reference.blend(image_bgr, mask, pal.bgr_table(palette), alpha), mask, labels, palette)


def _model_files(model):
    """(folder, meta, engine path or None, onnx path or None) for a folder or an .onnx file."""
    if model.endswith(".onnx"):
        folder = os.path.dirname(model) or "."
        return folder, sidecar.load(folder), None, model
    meta = sidecar.load(model)
    engine = os.path.join(model, meta.get("engine", {}).get("file", "model.engine"))
    onnx = os.path.join(model, "model.onnx")
    return model, meta, engine if os.path.isfile(engine) else None, onnx if os.path.isfile(onnx) else None


def make_backend(model, backend="auto", current_device=None, onnx_fallback=None):
    meta_folder, meta, engine, onnx = _model_files(model)
    onnx = onnx or onnx_fallback
    if backend == "auto":
        from runtime.backends.tensorrt_backend import import_tensorrt
        try:
            backend = "tensorrt" if engine and import_tensorrt() else "onnxruntime"
        except Exception:
            backend = "onnxruntime"
    if backend == "tensorrt":
        if not engine:
            raise EngineError("No TensorRT engine in %s: build it on this device with `doit build_engine`." % meta_folder)
        from runtime.backends.tensorrt_backend import TensorRTBackend
        from runtime.device import identity
        return TensorRTBackend(meta_folder, meta, current_device or identity())
    if not onnx:
        raise EngineError("No model.onnx for %s: run `doit onnx` on the host (or copy the bundle)." % meta_folder)
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(onnx, sidecar.load(os.path.dirname(onnx) or "."))


class Segmenter(object):
    """image (BGR uint8) -> tensor -> logits -> mask, with per-stage timings in milliseconds."""

    def __init__(self, backend, kernels=None, keep_logits=False):
        self.backend, self.meta, self.keep_logits = backend, backend.meta, keep_logits
        _, _, self.in_h, self.in_w = self.meta["input"]["shape"]
        self.labels, self.palette = self.meta["labels"], self.meta["palette"]
        self.gpu = None
        if kernels is not None:
            from runtime.gpu_pipeline import GpuPipeline
            b = backend
            self.gpu = GpuPipeline(kernels, self.meta, stream=getattr(b, "stream", None),
                                   input_ptr=getattr(b, "input", None), output_ptr=getattr(b, "output", None),
                                   input_dtype=getattr(b, "input_dtype", np.float32),
                                   output_dtype=getattr(b, "output_dtype", np.float32))

    @classmethod
    def from_path(cls, model, backend="auto", kernels_dir=None, keep_logits=False):
        """A segmenter for an engine folder or an .onnx file; GPU pre/post when kernels_dir holds
        cubins compiled for this GPU (doit runtime_check writes them to artifacts/kernels/sm_XX)."""
        kernels = None
        if kernels_dir:
            from runtime.cuda_ops import Kernels
            kernels = Kernels(kernels_dir)
        return cls(make_backend(model, backend), kernels, keep_logits)

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
        return reference.preprocess(image_bgr, self.in_h, self.in_w, pre["mean"], pre["std"], pre["scale"],
                                    pre["pass_order"])

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
        result = SegmentationResult(mask, {"preprocess": ms[0], "infer": ms[1], "postprocess": ms[2]},
                                    logits if self.keep_logits else None)
        if overlay_alpha is not None:
            result.overlay = overlay(image_bgr, mask, overlay_alpha, self.labels, self.palette)
        return result

    def _segment_gpu(self, image_bgr, overlay_alpha):
        gpu, b = self.gpu, self.backend
        gpu.upload(image_bgr)
        gpu.preprocess()
        host_ms = 0.0
        if b.device_buffers:
            b.execute_async(gpu.stream)
        else:
            t0 = time.perf_counter()
            gpu.upload_logits(b.infer(gpu.download_input()))
            host_ms = 1000.0 * (time.perf_counter() - t0)
        gpu.postprocess()
        mask = gpu.download_mask()
        timings = gpu.timings()
        if not b.device_buffers:
            timings["infer"] = host_ms
        result = SegmentationResult(mask, timings)
        if self.keep_logits:
            result.logits = self._download_logits()
        if overlay_alpha is not None:
            result.overlay = pal.draw_legend(gpu.overlay(overlay_alpha), mask, self.labels, self.palette)
        return result

    def _download_logits(self):
        out = np.empty(self.meta["output"]["shape"], self.gpu.output_dtype)
        self.gpu.drv.memcpy_dtoh(out, self.gpu.output)
        return out.astype(np.float32)
