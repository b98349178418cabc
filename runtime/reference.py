"""CPU reference implementations of the three ops (preprocess, postprocess, overlay).

They are what the ONNX Runtime CPU backend runs and the oracles for the CUDA kernels.
Preprocess reproduces the HF image processor: Pillow's antialiased bilinear resize on uint8
(a horizontal then a vertical pass, 22-bit fixed-point weights, rounding to uint8 between
passes), then rescale and normalize. `resample_coeffs` computes Pillow's exact weights, which
the CUDA kernel also uses; `resize_fixed_point` replays Pillow's integer arithmetic in NumPy,
so the result does not depend on the Pillow installed on the device."""
import math

import cv2
import numpy as np

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images


def resample_coeffs(in_size, out_size):
    """Pillow's bilinear (triangle) filter weights for one axis.

    Returns (bounds, weights): bounds is (out_size, 2) int32 of (first input index, tap count),
    weights is (out_size, ksize) int32 fixed-point, zero past each row's tap count."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    bounds = np.zeros((out_size, 2), np.int32)
    weights = np.zeros((out_size, ksize), np.int32)
    inv_filterscale = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) * inv_filterscale)) for x in range(xmax)]
        total = sum(w)
        w = [v / total if total != 0.0 else v for v in w]
        weights[xx, :xmax] = [int(0.5 + v * (1 << PRECISION_BITS)) for v in w]
        bounds[xx] = (xmin, xmax)
    return bounds, weights


def _pass(src, bounds, weights, axis):
    """One fixed-point pass along `axis` (1: horizontal, 0: vertical) of an HxWxC uint8 image.
    Accumulates tap by tap in int32, which cannot overflow: 255 * 2**22 summed over weights that
    add up to 2**22 stays below 2**31."""
    n_in = src.shape[axis]
    shape = (1, -1, 1) if axis == 1 else (-1, 1, 1)
    acc = None
    for j in range(weights.shape[1]):
        taps = np.take(src, np.minimum(bounds[:, 0] + j, n_in - 1), axis=axis).astype(np.int32)
        term = taps * weights[:, j].astype(np.int32).reshape(shape)
        acc = term if acc is None else acc + term
    acc += 1 << (PRECISION_BITS - 1)
    acc >>= PRECISION_BITS
    return np.clip(acc, 0, 255).astype(np.uint8)


def horizontal_first(in_h, in_w, out_h, out_w, pass_order="pillow13"):
    """Which pass Pillow runs first. Pillow < 13 always runs the horizontal pass first; Pillow 13
    runs the vertical pass first when the height shrinks by more than twice what the width does."""
    if pass_order == "horizontal_first":
        return True
    return not (in_h - out_h > 0 and in_h - out_h > (in_w - out_w) * 2)


def resize_fixed_point(rgb, out_h, out_w, pass_order="pillow13"):
    """Pillow's bilinear resize of an HxWxC uint8 image, replayed bit-exactly in NumPy."""
    h, w = rgb.shape[:2]
    passes = [(1, w, out_w), (0, h, out_h)]
    if not horizontal_first(h, w, out_h, out_w, pass_order):
        passes.reverse()
    for axis, n_in, n_out in passes:
        if n_in != n_out:
            rgb = _pass(rgb, *resample_coeffs(n_in, n_out), axis=axis)
    return rgb


def preprocess(image_bgr, height, width, mean, std, scale=1.0 / 255, pass_order="pillow13",
               dtype=np.float32):
    """BGR uint8 HxWx3 -> normalized 1x3xHxW tensor, exactly as the HF image processor."""
    rgb = resize_fixed_point(np.ascontiguousarray(image_bgr[..., ::-1]), height, width, pass_order)
    x = rgb.astype(np.float32) * np.float32(scale)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(dtype)


def upsample_argmax(logits, out_h, out_w):
    """Logits (1x)Cxhxw -> uint8 mask at out_h x out_w: bilinear upsample (align_corners=False),
    then argmax over classes (the first maximum wins), in the reference order."""
    chw = np.asarray(logits, np.float32).reshape(logits.shape[-3:])
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
    best = np.full((out_h, out_w), -np.inf, np.float32)
    mask = np.zeros((out_h, out_w), np.uint8)
    for start in range(0, hwc.shape[2], 4):  # cv2.resize handles up to 4 channels per call fastest
        part = cv2.resize(np.ascontiguousarray(hwc[:, :, start:start + 4]), (out_w, out_h),
                          interpolation=cv2.INTER_LINEAR)
        part = part.reshape(out_h, out_w, -1)
        for k in range(part.shape[2]):
            better = part[:, :, k] > best
            best[better] = part[:, :, k][better]
            mask[better] = start + k
    return mask


def blend(image_bgr, mask, palette_bgr, alpha):
    """Colourize `mask` with the BGR lookup table and alpha-blend it over the image."""
    color = palette_bgr[mask].astype(np.float32)
    out = image_bgr.astype(np.float32) * (1.0 - alpha) + color * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
